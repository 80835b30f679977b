package testenv

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Pty opens a pseudo-terminal: what a command reads from tty is a
// terminal to it (isatty, tcgetattr), and what the test writes to
// console arrives there as typed, a line at a time. Both close when the
// test ends.
func Pty(t testing.TB) (console, tty *os.File) {
	t.Helper()
	console, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("testenv: opening a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { console.Close() })
	fd := int(console.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("testenv: unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("testenv: naming the pseudo-terminal: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("testenv: opening the pseudo-terminal's tty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return console, tty
}
