//! Library tests for `talk`: real programs only — `cp` of a fixture WAV as a deterministic TTS,
//! `false`/`true`/`ls`/`sleep` for failures, and espeak-ng itself (scripts/test.sh installs it;
//! like the other peers, its absence fails the test rather than skipping it).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tests::{config, write_8k, TempDir};
use super::*;

fn with_command(dir: &Path, command: &str) -> AudioLibrary {
    AudioLibrary::new(LibraryConfig {
        tts_command: command.to_owned(),
        tts_timeout: Duration::from_secs(5),
        ..config(dir, &dir.join("tts-cache"))
    })
}

fn cache_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("tts-cache"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn speech_is_cached_in_memory_and_on_disk() {
    let dir = TempDir::new("tts-cp");
    let fixture = dir.path().join("fixture.wav");
    write_8k(&fixture, &[5, -5, 5, -5]);
    let command = format!("cp {} {{output}}", fixture.display());
    let lib = with_command(dir.path(), &command);

    let said = lib
        .speech("hello; it's \"quoted\"", "")
        .await
        .expect("speech");
    assert_eq!(&*said, &[5, -5, 5, -5]);
    let files = cache_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("tts-") && files[0].ends_with(".wav") && !files[0].contains("tmp")
    );
    let again = lib
        .speech("hello; it's \"quoted\"", "en")
        .await
        .expect("memory");
    assert!(Arc::ptr_eq(&said, &again), "empty language is en");

    // A fresh library (empty memory) with the fixture gone can only answer from disk.
    std::fs::remove_file(&fixture).expect("remove fixture");
    let fresh = with_command(dir.path(), &command);
    let from_disk = fresh
        .speech("hello; it's \"quoted\"", "en")
        .await
        .expect("disk");
    assert_eq!(&*from_disk, &[5, -5, 5, -5]);
    // Different text is not in the cache, and now the command fails naming itself.
    let failed = fresh.speech("other", "en").await.expect_err("cp fails");
    assert!(matches!(failed, AudioError::TtsFailed { .. }), "{failed:?}");
    assert!(failed.to_string().contains("cp "), "{failed}");
    assert!(failed.to_string().contains("No such file"), "{failed}");
    assert_eq!(cache_files(dir.path()).len(), 1, "no temp file left behind");
}

#[tokio::test]
async fn failing_commands_name_the_command_and_stderr() {
    let dir = TempDir::new("tts-fail");

    let failed = with_command(dir.path(), "false {output}")
        .speech("hi", "en")
        .await;
    let failed = failed.expect_err("false fails");
    assert!(matches!(failed, AudioError::TtsFailed { .. }), "{failed:?}");
    let shown = failed.to_string();
    assert!(
        shown.contains("`false ") && shown.contains("exit status: 1"),
        "{shown}"
    );

    let lib = with_command(dir.path(), "ls /nonexistent-activeflow-dir {output}");
    let ls = lib.speech("hi", "en").await.expect_err("ls fails");
    assert!(
        ls.to_string().contains("nonexistent-activeflow-dir"),
        "{ls}"
    );

    let silent = with_command(dir.path(), "true {output}")
        .speech("hi", "en")
        .await;
    assert!(
        matches!(silent, Err(AudioError::TtsNoOutput { .. })),
        "{silent:?}"
    );

    let garbage = dir.path().join("garbage.txt");
    std::fs::write(&garbage, b"not audio").expect("write");
    let lib = with_command(dir.path(), &format!("cp {} {{output}}", garbage.display()));
    let bad = lib.speech("hi", "en").await.expect_err("not a wav");
    assert!(matches!(bad, AudioError::TtsBadOutput { .. }), "{bad:?}");
    assert!(bad.to_string().contains("not a RIFF/WAVE file"), "{bad}");

    let missing = with_command(dir.path(), "no-such-tts-program-xyz {output}");
    let missing = missing.speech("hi", "en").await.expect_err("no program");
    assert!(
        matches!(missing, AudioError::TtsSpawn { .. }),
        "{missing:?}"
    );
    assert!(
        missing.to_string().contains("no-such-tts-program-xyz"),
        "{missing}"
    );

    let empty = with_command(dir.path(), "   ").speech("hi", "en").await;
    assert!(
        matches!(empty, Err(AudioError::EmptyTtsCommand)),
        "{empty:?}"
    );
    assert!(
        cache_files(dir.path()).is_empty(),
        "{:?}",
        cache_files(dir.path())
    );
}

#[tokio::test]
async fn a_hanging_command_is_killed_at_the_timeout() {
    let dir = TempDir::new("tts-hang");
    // A real program that says something and then hangs (exec: the kill reaches the sleep). Run
    // as `sh FILE`, not exec'd directly: a just-written executable can fail with ETXTBSY while
    // another test thread forks.
    let script = dir.path().join("hang.sh");
    std::fs::write(&script, "echo warming up >&2\nexec sleep 30\n").expect("script");
    let lib = AudioLibrary::new(LibraryConfig {
        tts_command: format!("sh {} {{output}}", script.display()),
        tts_timeout: Duration::from_millis(500),
        ..config(dir.path(), &dir.path().join("tts-cache"))
    });
    let started = Instant::now();
    let hung = lib.speech("hi", "en").await.expect_err("timeout");
    assert!(matches!(hung, AudioError::TtsTimeout { .. }), "{hung:?}");
    let shown = hung.to_string();
    assert!(
        shown.contains("hang.sh") && shown.contains("warming up"),
        "{shown}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        cache_files(dir.path()).is_empty(),
        "{:?}",
        cache_files(dir.path())
    );
}

#[tokio::test]
async fn bad_language_and_empty_text_run_nothing() {
    let dir = TempDir::new("tts-lang");
    let lib = with_command(dir.path(), "false {output}");
    for language in ["en;rm -rf /", "-w", "fr fr", &"x".repeat(33)] {
        let e = lib.speech("hi", language).await.expect_err("bad language");
        assert!(
            matches!(e, AudioError::BadLanguage { .. }),
            "{language}: {e:?}"
        );
    }
    let empty = lib.speech("  \n", "en").await;
    assert!(
        matches!(empty, Err(AudioError::EmptyText { .. })),
        "{empty:?}"
    );
}

/// Fails loudly when espeak-ng is missing (scripts/test.sh installs it).
pub(super) fn espeak_installed() {
    let ok = std::process::Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "espeak-ng not installed; scripts/test.sh installs it");
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn espeak_speaks_and_its_output_is_reused() {
    espeak_installed();
    let dir = TempDir::new("espeak");
    let lib = with_command(dir.path(), DEFAULT_TTS_COMMAND);
    let text = "Hello, this is a test of the activeflow speech.";
    let said = lib.speech(text, "").await.expect("espeak-ng speaks");
    let seconds = said.len() as f64 / 8000.0;
    assert!((1.0..8.0).contains(&seconds), "{seconds} s");
    assert!(rms(&said) > 300.0, "too quiet: rms {}", rms(&said));
    assert_eq!(cache_files(dir.path()).len(), 1);

    // Quotes, semicolons and a leading dash are just words: no shell, no options (had `-w`
    // been taken as an option, espeak-ng would not have written our output file).
    for tricky in [
        "it's \"quoted\"; rm -rf / && echo $HOME",
        "-w /tmp/pwned.wav hello",
    ] {
        let tricky_said = lib.speech(tricky, "en").await.expect("tricky text");
        assert!(rms(&tricky_said) > 300.0, "{tricky}");
    }

    let french = lib.speech("Bonjour", "fr").await.expect("french");
    assert!(!french.is_empty());
    assert_eq!(cache_files(dir.path()).len(), 4);
    let fresh = with_command(dir.path(), DEFAULT_TTS_COMMAND);
    let from_disk = fresh.speech(text, "en").await.expect("disk cache");
    assert_eq!(&*from_disk, &*said);
}

fn set_age(path: &Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - age).unwrap();
}

fn age(path: &Path) -> Duration {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    modified.elapsed().unwrap_or_default()
}

#[tokio::test]
async fn a_phrase_heard_from_memory_outlives_colder_files_on_disk() {
    let dir = TempDir::new("tts-hot");
    let fixture = dir.path().join("fixture.wav");
    write_8k(&fixture, &[1, 2, 3, 4]);
    let lib = with_command(dir.path(), &format!("cp {} {{output}}", fixture.display()));
    let cache_dir = dir.path().join("tts-cache");
    lib.speech("hot", "en").await.expect("hot");
    lib.speech("cold", "en").await.expect("cold");
    let hot = speech::cache_path(&lib.config, "en", "hot");
    let cold = speech::cache_path(&lib.config, "en", "cold");
    // Spoken long ago, both; the cold one more recently.
    set_age(&hot, Duration::from_secs(7200));
    set_age(&cold, Duration::from_secs(3600));

    lib.speech("hot", "en").await.expect("from memory");
    // The mark happens off-thread.
    let until = Instant::now() + Duration::from_secs(5);
    while age(&hot) > Duration::from_secs(60) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let one_file = std::fs::metadata(&hot).unwrap().len();
    let enforced = quota::enforce(&cache_dir, one_file, Duration::from_secs(60));
    assert_eq!(enforced.removed, 1);
    assert!(hot.exists(), "the phrase heard from memory stays");
    assert!(!cold.exists());
}

#[tokio::test]
async fn a_hung_up_synthesis_leaves_no_temp_file() {
    let dir = TempDir::new("tts-hangup");
    let fixture = dir.path().join("fixture.wav");
    write_8k(&fixture, &[1, 2, 3, 4]);
    // Writes its output, then keeps running: the caller gives up before it exits.
    let script = dir.path().join("slow-tts.sh");
    std::fs::write(
        &script,
        format!("cp {} \"$1\"\nexec sleep 30\n", fixture.display()),
    )
    .unwrap();
    let lib = Arc::new(with_command(
        dir.path(),
        &format!("sh {} {{output}}", script.display()),
    ));
    let speaking = tokio::spawn({
        let lib = Arc::clone(&lib);
        async move { lib.speech("slow", "en").await }
    });
    let temp_files = || {
        cache_files(dir.path())
            .into_iter()
            .filter(|n| n.contains(".tmp-"))
            .count()
    };
    let until = Instant::now() + Duration::from_secs(5);
    while temp_files() == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(temp_files(), 1, "the command wrote its output");
    speaking.abort();
    assert!(speaking.await.unwrap_err().is_cancelled());
    let until = Instant::now() + Duration::from_secs(5);
    while temp_files() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cache_files(dir.path()), Vec::<String>::new());
}
