//! The infra binary on its own: version, signals, the PID 1 warning, reaping, and size.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PAUSE: &str = env!("CARGO_BIN_EXE_peapod-pause");

fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("peapod-pause did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

/// Kills the process on drop, so a failing test leaves nothing running.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits until `pid` sleeps in its signal wait, so a signal sent now finds the mask set
/// and is not taken by the default action.
fn wait_sleeping(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("sigtimedwait") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "peapod-pause never went to sleep"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn version_flag_prints_the_version_and_exits_0() {
    let out = Command::new(PAUSE).arg("-v").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("peapod-pause {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn sigterm_and_sigint_exit_0_and_a_non_pid1_run_warns() {
    for sig in [libc_sig::SIGTERM, libc_sig::SIGINT] {
        let mut child = Command::new(PAUSE)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _reap = Reap(child.id());
        wait_sleeping(child.id());
        // It blocks until told otherwise.
        std::thread::sleep(Duration::from_millis(100));
        assert!(child.try_wait().unwrap().is_none(), "exited on its own");
        Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()
            .unwrap();
        let st = wait_timeout(&mut child, Duration::from_secs(5));
        assert_eq!(st.code(), Some(0), "signal {sig}: {st:?}");
        let err = stderr_of(&mut child);
        assert!(err.contains("warning: not running as PID 1"), "{err}");
    }
}

#[test]
fn sigkill_still_kills_it() {
    let mut child = Command::new(PAUSE).stderr(Stdio::null()).spawn().unwrap();
    let _reap = Reap(child.id());
    wait_sleeping(child.id());
    child.kill().unwrap();
    let st = wait_timeout(&mut child, Duration::from_secs(5));
    assert_eq!(st.signal(), Some(9));
}

/// As PID 1 of a new PID namespace it gives no warning and reaps the orphans the namespace
/// hands to it.
#[test]
fn as_pid1_it_reaps_orphans() {
    let mut ns = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", PAUSE])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _reap_unshare = Reap(ns.id());
    // unshare's child is the pause process, PID 1 in the new namespace.
    let deadline = Instant::now() + Duration::from_secs(5);
    let pause = loop {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", ns.id()))
            .unwrap_or_default();
        if let Some(p) = children.split_whitespace().next() {
            break p.parse::<u32>().unwrap();
        }
        assert!(Instant::now() < deadline, "unshare started no child");
        std::thread::sleep(Duration::from_millis(5));
    };
    let _reap = Reap(pause);
    wait_sleeping(pause);
    // A shell in the namespace leaves ten orphans behind; they are re-parented to PID 1.
    let st = Command::new("nsenter")
        .args([
            "-t",
            &pause.to_string(),
            "--pid",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.2 &); done",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let orphans = |zombies: bool| {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|s| {
                let Some((_, rest)) = s.rsplit_once(") ") else {
                    return false;
                };
                let f: Vec<&str> = rest.split_whitespace().collect();
                f.get(1) == Some(&pause.to_string().as_str()) && (!zombies || f[0] == "Z")
            })
            .count()
    };
    assert!(orphans(false) > 0, "the orphans were not handed to pause");
    let deadline = Instant::now() + Duration::from_secs(5);
    while orphans(false) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} zombies left unreaped",
            orphans(true)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still there after reaping; SIGTERM ends it with 0.
    assert!(ns.try_wait().unwrap().is_none());
    Command::new("kill")
        .args(["-TERM", &pause.to_string()])
        .status()
        .unwrap();
    let st = wait_timeout(&mut ns, Duration::from_secs(5));
    assert_eq!(st.code(), Some(0));
    let err = stderr_of(&mut ns);
    assert!(!err.contains("not running as PID 1"), "{err}");
}

/// Static, with no interpreter or dynamic section, and at most 16 KiB.
#[test]
fn binary_is_static_and_tiny() {
    let bin = std::fs::read(PAUSE).unwrap();
    assert!(
        bin.len() <= 16 * 1024,
        "peapod-pause is {} bytes, over 16 KiB",
        bin.len()
    );
    assert_eq!(&bin[..4], b"\x7fELF");
    assert_eq!(bin[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([bin[o], bin[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bin[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(bin[o..o + 4].try_into().unwrap());
        assert_ne!(p_type, 3, "has a PT_INTERP: dynamically linked");
        assert_ne!(p_type, 2, "has a PT_DYNAMIC section");
    }
}

mod libc_sig {
    pub const SIGINT: i32 = 2;
    pub const SIGTERM: i32 = 15;
}
