//! A TTS command that logs when each process starts and ends, for counting processes and their
//! overlap: espeak-ng behind a small `sh` wrapper. Std-only, so the library's unit tests
//! (`src/media/library/tests_limits.rs`, through `#[path]`) and the black-box tests share it.

use std::path::{Path, PathBuf};

/// Writes `dir/tts.sh` and returns the `media.tts_command` that runs it
/// (`sh tts.sh LOG {language} {output} {text}`: `start`/`end` lines with a nanosecond clock
/// around `sleep HOLD; espeak-ng`) and the log's path.
pub(crate) fn logged_espeak(dir: &Path, hold: &str) -> (String, PathBuf) {
    let script = dir.join("tts.sh");
    let log = dir.join("tts.log");
    std::fs::write(
        &script,
        format!(
            "log=$1; shift\n\
             echo \"start $$ $(date +%s%N)\" >> \"$log\"\n\
             sleep {hold}\n\
             espeak-ng -v \"$1\" -w \"$2\" \"$3\"; rc=$?\n\
             echo \"end $$ $(date +%s%N)\" >> \"$log\"\n\
             exit $rc\n"
        ),
    )
    .expect("write the TTS wrapper");
    let command = format!(
        "sh {} {} {{language}} {{output}} {{text}}",
        script.display(),
        log.display()
    );
    (command, log)
}

/// (processes started, most running at once) from [`logged_espeak`]'s log.
pub(crate) fn processes(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut events: Vec<(u128, i32)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let kind = parts.next()?;
            let at: u128 = parts.nth(1)?.parse().ok()?;
            Some((at, if kind == "start" { 1 } else { -1 }))
        })
        .collect();
    events.sort();
    let started = events.iter().filter(|(_, d)| *d == 1).count();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    (started, most.max(0) as usize)
}
