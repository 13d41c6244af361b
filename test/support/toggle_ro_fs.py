#!/usr/bin/python3
"""A FUSE mount of SOURCE at MOUNTPOINT that turns read-only while the file FLAG exists, and writable again when it is
removed, for files already open too: every call that would change anything fails with EROFS, as on a file system
the kernel has remounted read-only. Linux itself refuses `mount -o remount,ro` while a file on the volume is open for
writing, which is always the case under SQLite, so the tests use this instead.

Usage: toggle_ro_fs.py SOURCE MOUNTPOINT FLAG   (runs in the foreground until unmounted)
"""
import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class ToggleReadOnly(Operations):
    def __init__(self, source, flag):
        self.source = source
        self.flag = flag

    def _path(self, path):
        return os.path.join(self.source, path.lstrip("/"))

    def _writable(self):
        if os.path.exists(self.flag):
            raise FuseOSError(errno.EROFS)

    # reads

    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None else os.lstat(self._path(path))
        keys = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")
        return {key: getattr(st, key) for key in keys}

    def access(self, path, mode):
        if mode & os.W_OK:
            self._writable()
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail", "f_namemax")
        answer = {key: getattr(st, key) for key in keys}
        answer["f_flag"] = st.f_flag | (os.ST_RDONLY if os.path.exists(self.flag) else 0)
        return answer

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
            self._writable()
        return os.open(self._path(path), flags)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)

    def flush(self, path, fh):
        return 0

    # writes

    def create(self, path, mode, fi=None):
        self._writable()
        return os.open(self._path(path), os.O_CREAT | os.O_RDWR, mode)

    def write(self, path, data, offset, fh):
        self._writable()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._writable()
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path), length)

    def fsync(self, path, datasync, fh):
        self._writable()
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def unlink(self, path):
        self._writable()
        os.unlink(self._path(path))

    def mkdir(self, path, mode):
        self._writable()
        os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        self._writable()
        os.rmdir(self._path(path))

    def rename(self, old, new):
        self._writable()
        os.rename(self._path(old), self._path(new))

    def chmod(self, path, mode):
        self._writable()
        os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        self._writable()
        os.chown(self._path(path), uid, gid)

    def utimens(self, path, times=None):
        self._writable()
        os.utime(self._path(path), times)


if __name__ == "__main__":
    source, mountpoint, flag = sys.argv[1:4]
    FUSE(ToggleReadOnly(source, flag), mountpoint, foreground=True, use_ino=True, nothreads=False)
