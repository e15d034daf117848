//! The raw calls of the ext4 volume: loop-device ioctls and the ext4 shutdown ioctl, one per
//! unsafe block. Constants and layouts are from `<linux/loop.h>` and `fs/ext4/ext4.h`, which the
//! libc crate does not carry.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `LOOP_CTL_GET_FREE`: the number of a free loop device (allocating one if needed).
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// `LOOP_CONFIGURE` (Linux 5.8): attach a backing fd and set flags in one step.
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
/// `LOOP_CLR_FD`: detach the backing file.
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
/// Detach automatically when the last user (the mount) lets go.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// `EXT4_IOC_SHUTDOWN` = `_IOR('X', 125, __u32)`.
const EXT4_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
/// Shut down without flushing the journal: every write fails from now on, at once.
pub const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Asks `/dev/loop-control` for a free loop device number.
pub fn loop_get_free(control: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: `control` is an open fd for the borrow's lifetime; LOOP_CTL_GET_FREE takes no
    // pointer argument.
    let n = cvt(unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) })?;
    u32::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))
}

/// Attaches `backing` to the loop device `device` with `flags`; `name` (truncated to 63 bytes)
/// is what `losetup -l` shows for old tools.
pub fn loop_configure(
    device: BorrowedFd<'_>,
    backing: BorrowedFd<'_>,
    flags: u32,
    name: &[u8],
) -> io::Result<()> {
    let fd = u32::try_from(backing.as_raw_fd())
        .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    let mut file_name = [0u8; 64];
    let len = name.len().min(63);
    file_name[..len].copy_from_slice(&name[..len]);
    let config = LoopConfig {
        fd,
        block_size: 0,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: file_name,
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: both fds are open for the borrows' lifetimes; `config` is a live, fully
    // initialised `struct loop_config` that the kernel only reads during the call.
    cvt(unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            LOOP_CONFIGURE,
            &config as *const LoopConfig,
        )
    })?;
    Ok(())
}

/// Detaches the loop device's backing file (deferred by the kernel while the device is busy).
pub fn loop_clear(device: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `device` is an open fd for the borrow's lifetime; LOOP_CLR_FD takes no argument.
    cvt(unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CLR_FD) })?;
    Ok(())
}

/// `EXT4_IOC_SHUTDOWN` on any fd of the filesystem.
pub fn ext4_shutdown(fs: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    // SAFETY: `fs` is an open fd for the borrow's lifetime; `flags` is a live u32 the kernel
    // reads (the ioctl is declared _IOR but copies the flags from user memory).
    cvt(unsafe { libc::ioctl(fs.as_raw_fd(), EXT4_IOC_SHUTDOWN, &flags as *const u32) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_structs_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
