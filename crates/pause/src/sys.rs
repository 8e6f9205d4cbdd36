//! The handful of raw Linux system calls the infra process needs, and its `_start`.

use core::arch::{asm, global_asm};

pub const STDOUT: usize = 1;
pub const STDERR: usize = 2;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const GETPID: usize = 39;
    pub const WAIT4: usize = 61;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const EXIT_GROUP: usize = 94;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const GETPID: usize = 172;
    pub const WAIT4: usize = 260;
}

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call pause_main",
    "ud2",
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x0, sp",
    "bl pause_main",
    "brk #0",
);

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: a plain Linux system call; the callers pass valid pointers or null.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: a plain Linux system call; the callers pass valid pointers or null.
    unsafe {
        asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b,
             in("x2") c, in("x3") d, options(nostack));
    }
    ret
}

pub fn write(fd: usize, buf: &[u8]) {
    syscall4(nr::WRITE, fd, buf.as_ptr() as usize, buf.len(), 0);
}

pub fn exit(code: usize) -> ! {
    loop {
        // exit_group does not return; the loop only satisfies the type checker.
        syscall4(nr::EXIT_GROUP, code, 0, 0, 0);
    }
}

pub fn getpid() -> isize {
    syscall4(nr::GETPID, 0, 0, 0, 0)
}

/// Blocks the signals in `set` (a kernel sigset: bit n-1 for signal n).
pub fn block_signals(set: u64) -> isize {
    const SIG_BLOCK: usize = 0;
    syscall4(
        nr::RT_SIGPROCMASK,
        SIG_BLOCK,
        &set as *const u64 as usize,
        0,
        8,
    )
}

/// Waits for one of the (blocked) signals in `set`; returns its number or a negative errno.
pub fn wait_signal(set: u64) -> isize {
    syscall4(nr::RT_SIGTIMEDWAIT, &set as *const u64 as usize, 0, 0, 8)
}

/// Reaps one exited child without blocking; returns its pid, 0 or a negative errno.
pub fn reap_one() -> isize {
    const WNOHANG: usize = 1;
    syscall4(nr::WAIT4, usize::MAX, 0, WNOHANG, 0)
}

/// Whether the NUL-terminated string at `p` equals `want`.
///
/// # Safety
/// `p` must point at a NUL-terminated string.
pub unsafe fn arg_is(p: *const u8, want: &[u8]) -> bool {
    for (i, &w) in want.iter().enumerate() {
        // SAFETY: guaranteed by the caller; we stop at the first mismatch, the NUL included.
        if unsafe { *p.add(i) } != w {
            return false;
        }
    }
    // SAFETY: every byte before index `want.len()` was non-NUL, so this one is in bounds.
    unsafe { *p.add(want.len()) == 0 }
}
