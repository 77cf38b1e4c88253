//! The library's caps with real programs: espeak-ng behind a small `sh` wrapper that logs when
//! each process starts and ends (so the test can count processes and their overlap), and a real
//! HTTP server on loopback for prompt downloads. scripts/test.sh installs espeak-ng.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::tests::{config, serve_delayed, with_length, write_8k, TempDir};
use super::tests_speech::espeak_installed;
use super::*;

#[path = "../../../tests/common/tts_log.rs"]
mod tts_log;
use tts_log::{logged_espeak, processes};

fn library(dir: &Path, command: &str, limits: MediaLimits) -> Arc<AudioLibrary> {
    Arc::new(AudioLibrary::with_limits(
        LibraryConfig {
            tts_command: command.to_owned(),
            tts_timeout: Duration::from_secs(20),
            ..config(dir, &dir.join("tts-cache"))
        },
        limits,
    ))
}

#[tokio::test]
async fn the_same_text_spoken_at_once_by_many_starts_one_process() {
    espeak_installed();
    let dir = TempDir::new("tts-dedup");
    let (command, log) = logged_espeak(dir.path(), "0.5");
    let lib = library(dir.path(), &command, MediaLimits::default());
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let lib = lib.clone();
        calls.spawn(async move { lib.speech("Welcome to activeflow.", "en").await });
    }
    let mut said = Vec::new();
    while let Some(r) = calls.join_next().await {
        said.push(r.unwrap().expect("speech"));
    }
    assert_eq!(processes(&log).0, 1, "one espeak-ng for eight requests");
    assert!(said[0].len() > 4000, "real speech");
    assert!(said.iter().all(|s| s[..] == said[0][..]));
}

#[tokio::test]
async fn distinct_texts_never_run_more_processes_than_the_cap() {
    espeak_installed();
    let dir = TempDir::new("tts-cap");
    let (command, log) = logged_espeak(dir.path(), "0.3");
    let limits = MediaLimits {
        max_tts_processes: 2,
        ..MediaLimits::default()
    };
    let lib = library(dir.path(), &command, limits);
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..6 {
        let lib = lib.clone();
        calls.spawn(async move { lib.speech(&format!("Caller number {n}."), "en").await });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap().expect("every text is spoken, in turn");
    }
    let (started, most) = processes(&log);
    assert_eq!(started, 6);
    assert!(most <= 2, "{most} espeak-ng processes at once, cap 2");
}

#[tokio::test]
async fn over_the_cap_a_request_waits_then_fails_clearly() {
    espeak_installed();
    let dir = TempDir::new("tts-busy");
    let (command, _) = logged_espeak(dir.path(), "2");
    let limits = MediaLimits {
        max_tts_processes: 1,
        slot_wait: Duration::from_millis(300),
        ..MediaLimits::default()
    };
    let lib = library(dir.path(), &command, limits);
    let first = {
        let lib = lib.clone();
        tokio::spawn(async move { lib.speech("First.", "en").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = lib.speech("Second.", "en").await.expect_err("no slot");
    assert!(
        matches!(
            second,
            AudioError::Busy {
                work: "tts",
                limit: 1,
                ..
            }
        ),
        "{second:?}"
    );
    assert!(second.to_string().contains("max_tts_processes"), "{second}");
    first.await.unwrap().expect("the first still speaks");
}

#[tokio::test]
async fn the_disk_cache_keeps_within_its_quota_dropping_the_least_recently_used() {
    espeak_installed();
    let dir = TempDir::new("tts-quota");
    let one = {
        let probe = library(
            &dir.path().join("probe"),
            DEFAULT_TTS_COMMAND,
            MediaLimits::default(),
        );
        std::fs::create_dir_all(dir.path().join("probe")).unwrap();
        probe.speech("Number one.", "en").await.expect("probe");
        // The file as espeak-ng wrote it (22 kHz), not the decoded 8 kHz audio.
        std::fs::read_dir(dir.path().join("probe/tts-cache"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.metadata().unwrap().len())
            .sum::<u64>()
    };
    let limits = MediaLimits {
        cache_max_bytes: one * 5 / 2,
        ..MediaLimits::default()
    };
    let cache = dir.path().join("tts-cache");
    let size = || -> u64 {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let names = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut written = Vec::new();
    for text in ["Number one.", "Number two.", "Number six."] {
        // A fresh library each time: its memory cache is empty, so the disk is used.
        let before = names();
        library(dir.path(), DEFAULT_TTS_COMMAND, limits)
            .speech(text, "en")
            .await
            .expect("speech");
        written.push(
            names()
                .difference(&before)
                .next()
                .cloned()
                .expect("a new file"),
        );
        if text == "Number two." {
            // "Number one." read from disk again: now more recently used than "Number two.".
            tokio::time::sleep(Duration::from_millis(20)).await;
            library(dir.path(), DEFAULT_TTS_COMMAND, limits)
                .speech("Number one.", "en")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await; // its mtime is refreshed
        }
    }
    assert!(
        size() <= limits.cache_max_bytes,
        "{} > {}",
        size(),
        limits.cache_max_bytes
    );
    let kept = names();
    assert!(kept.contains(&written[0]), "used again: kept {kept:?}");
    assert!(
        !kept.contains(&written[1]),
        "least recently used: purged {kept:?}"
    );
    assert!(kept.contains(&written[2]), "newest: kept {kept:?}");
}

#[tokio::test]
async fn concurrent_downloads_of_one_url_fetch_once_and_downloads_are_capped() {
    let dir = TempDir::new("fetch-cap");
    write_8k(&dir.path().join("x.wav"), &[3; 800]);
    let wav = std::fs::read(dir.path().join("x.wav")).unwrap();
    let mut routes = HashMap::new();
    let ok = with_length("200 OK", &wav);
    routes.insert("/slow.wav", (Duration::from_millis(300), ok.clone()));
    routes.insert("/a.wav", (Duration::from_millis(500), ok.clone()));
    routes.insert("/b.wav", (Duration::from_millis(500), ok));
    let (addr, seen) = serve_delayed(routes).await;
    let limits = MediaLimits {
        max_prompt_fetches: 1,
        slot_wait: Duration::from_millis(200),
        ..MediaLimits::default()
    };
    let lib = library(dir.path(), DEFAULT_TTS_COMMAND, limits);
    let mut plays = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (lib, url) = (lib.clone(), format!("http://{addr}/slow.wav"));
        plays.spawn(async move { lib.prompt(&url).await });
    }
    while let Some(r) = plays.join_next().await {
        assert_eq!(r.unwrap().expect("prompt").len(), 800);
    }
    let fetched = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|p| *p == "/slow.wav")
        .count();
    assert_eq!(fetched, 1);
    // Two different URLs with one slot and a short wait: the second fails clearly.
    let a = {
        let (lib, url) = (lib.clone(), format!("http://{addr}/a.wav"));
        tokio::spawn(async move { lib.prompt(&url).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = lib.prompt(&format!("http://{addr}/b.wav")).await;
    assert!(
        matches!(
            b,
            Err(AudioError::Busy {
                work: "prompt_fetch",
                ..
            })
        ),
        "{b:?}"
    );
    a.await.unwrap().expect("the first downloads");
}
