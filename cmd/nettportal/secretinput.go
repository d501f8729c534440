package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSecretInput bounds a secret read from a file or stdin.
const maxSecretInput = 4096

// secretSource is where a command may take one secret from, so it need
// not be on the command line (visible in ps and shell history).
type secretSource struct {
	what string // "RADIUS secret", for messages and the prompt
	flag string // the plain flag's name, e.g. "secret"
	env  string // environment variable, e.g. NETTPORTAL_SECRET
}

// resolve returns the secret from, in order: the -file flag (a path, or
// "-" for one line of stdin), the plain flag, the environment variable,
// and finally a prompt without echo when stdin is a terminal. Empty means
// none was given.
func (s secretSource) resolve(flagVal, file string, getenv func(string) string, stderr io.Writer) (string, error) {
	switch {
	case file == "-":
		v, err := readSecretLine(os.Stdin)
		if err != nil {
			return "", fmt.Errorf("read %s from stdin: %w", s.what, err)
		}
		return v, nil
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--%s-file: %w", s.flag, err)
		}
		defer f.Close()
		v, err := readSecretLine(f)
		if err != nil {
			return "", fmt.Errorf("--%s-file %s: %w", s.flag, file, err)
		}
		return v, nil
	case flagVal != "":
		return flagVal, nil
	case getenv(s.env) != "":
		return getenv(s.env), nil
	}
	return promptSecret(s.what, stderr)
}

// readSecretLine reads the first line (a trailing newline, as editors and
// echo write, is not part of the secret).
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxSecretInput+1)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	if len(line) > maxSecretInput {
		return "", fmt.Errorf("longer than %d bytes", maxSecretInput)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", fmt.Errorf("empty")
	}
	return line, nil
}

// promptSecret asks on the terminal with echo off; without a terminal on
// stdin it returns "" (the caller says what is missing).
func promptSecret(what string, stderr io.Writer) (string, error) {
	fd := int(os.Stdin.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", nil // not a terminal
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("prompt for %s: %w", what, err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old) //nolint:errcheck // best effort to restore echo
	fmt.Fprintf(stderr, "%s: ", what)
	v, err := readSecretLine(os.Stdin)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("prompt for %s: %w", what, err)
	}
	return v, nil
}

// The secrets commands take, and the environment variables for them.
func radiusSecretSrc() secretSource {
	return secretSource{what: "RADIUS secret", flag: "secret", env: "NETTPORTAL_SECRET"}
}

func apiPasswordSrc() secretSource {
	return secretSource{what: "RouterOS API password", flag: "api-password", env: "NETTPORTAL_API_PASSWORD"}
}

func userPasswordSrc() secretSource {
	return secretSource{what: "password", flag: "password", env: "NETTPORTAL_PASSWORD"}
}
