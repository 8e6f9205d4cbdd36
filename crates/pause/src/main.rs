//! `peapod-pause`: the infra process of a pod.
//!
//! It holds the pod's namespaces for as long as the pod lives and does nothing else:
//! - blocks forever;
//! - SIGINT or SIGTERM: prints a line and exits 0;
//! - SIGCHLD: reaps every exited child (it matters as PID 1 of a shared PID namespace);
//! - `-v`: prints its version and exits 0;
//! - warns on stderr when it is not PID 1, and runs on.
//!
//! The binary is static and links no libc: it talks to the kernel through the few raw
//! system calls in [`sys`]. Signals are blocked and taken synchronously with
//! `rt_sigtimedwait`, so no handler (and no signal trampoline) is needed; a blocked signal is
//! still queued for a namespace's PID 1, which ignores only unblocked default-action signals.
#![no_std]
#![no_main]

mod sys;

const SIGINT: usize = 2;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Entry point called from the assembly `_start` in [`sys`] with the initial stack pointer.
///
/// # Safety
/// `sp` must point at the process's initial stack (argc, argv...), as the kernel laid it out.
#[unsafe(no_mangle)]
unsafe extern "C" fn pause_main(sp: *const usize) -> ! {
    // SAFETY: the kernel places argc at the top of the initial stack followed by argv.
    let argc = unsafe { *sp };
    if argc > 1 {
        // SAFETY: argv[1] exists because argc > 1 and is a NUL-terminated string.
        if unsafe { sys::arg_is(*sp.add(2) as *const u8, b"-v") } {
            out(sys::STDOUT, &["peapod-pause ", VERSION, "\n"]);
            sys::exit(0);
        }
    }
    if sys::getpid() != 1 {
        out(
            sys::STDERR,
            &["peapod-pause: warning: not running as PID 1\n"],
        );
    }

    let set: u64 = bit(SIGINT) | bit(SIGTERM) | bit(SIGCHLD);
    if sys::block_signals(set) < 0 {
        out(sys::STDERR, &["peapod-pause: cannot block signals\n"]);
        sys::exit(1);
    }
    loop {
        match sys::wait_signal(set) {
            s if s == SIGINT as isize || s == SIGTERM as isize => {
                out(sys::STDERR, &["peapod-pause: shutting down, got signal\n"]);
                sys::exit(0);
            }
            s if s == SIGCHLD as isize => while sys::reap_one() > 0 {},
            _ => {} // EINTR and the like: wait again.
        }
    }
}

fn bit(sig: usize) -> u64 {
    1 << (sig - 1)
}

fn out(fd: usize, parts: &[&str]) {
    for p in parts {
        sys::write(fd, p.as_bytes());
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    sys::exit(2)
}

/// The prebuilt `core` refers to the unwinder's personality routine even though this binary
/// never unwinds (panics abort through [`panic`]); this empty definition satisfies the linker.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
