//! Raw libc calls for reading overlayfs metadata.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// True when `dir` carries an overlayfs opaque marker (`trusted.` or `user.overlay.opaque` = y).
/// Unreadable attributes (not root, no xattr support) read as "not opaque".
pub(crate) fn is_opaque_dir(dir: &Path) -> bool {
    let Ok(cpath) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| xattr_is_y(&cpath, name))
}

fn xattr_is_y(path: &CString, name: &str) -> bool {
    let Ok(cname) = CString::new(name) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: `path` and `cname` are live NUL-terminated CStrings for the whole call, and `buf`
    // is a local array whose length is passed, so the kernel writes only inside it.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}
