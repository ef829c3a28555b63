package natsreg

import "golang.org/x/sys/unix"

// freeBytes is what dir's file system has free for an unprivileged writer.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
