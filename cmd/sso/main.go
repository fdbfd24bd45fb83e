// Command sso is the unified identity and single sign-on server and its
// command-line tools. Every verb reads the same configuration (flags, SSO_*
// variables, an optional YAML file), so the CLI works against the database
// directly, with or without a running server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// env is what a command reads from the outside world; tests supply their own.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is one verb, such as "user create".
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

// usageError makes main print the usage and exit 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"migrate up", "apply pending database migrations", runMigrateUp},
		{"migrate status", "list migrations and whether each is applied", runMigrateStatus},
		{"user create", "create an account", runUserCreate},
		{"user list", "list accounts", runUserList},
		{"user disable", "disable an account (it can no longer sign in)", runUserDisable},
		{"user enable", "enable a disabled account", runUserEnable},
		{"user import", "create accounts from a CSV file (no passwords; see README)", runUserImport},
		{"client create", "register an OAuth 2.0 / OpenID Connect client", runClientCreate},
		{"client list", "list clients", runClientList},
		{"client delete", "delete a client", runClientDelete},
		{"keys list", "list token-signing keys", runKeysList},
		{"keys rotate", "make new signing keys active; old ones stay published", runKeysRotate},
		{"audit verify", "check the audit log's hash chain (and, with --archives, the archive files)", runAuditVerify},
		{"audit archive", "move old audit records into a JSON-lines archive file, keeping the chain verifiable", runAuditArchive},
		{"certs init", "create the SM2 root and issuing certificate authorities", runCertsInit},
		{"certs import", "import an SM2 root and issuing CA (certificates and key) from PEM", runCertsImport},
		{"certs list", "list certificates issued by the internal CA", runCertsList},
		{"certs pem", "print a certificate as PEM", runCertsPEM},
		{"certs revoke", "revoke an end-entity certificate and republish the CRL", runCertsRevoke},
		{"certs licence-type create", "register an electronic licence type and the fields its licences carry", runLicenceTypeCreate},
		{"certs licence-type list", "list the registered electronic licence types", runLicenceTypeList},
		{"backup", "write a consistent copy of the SQLite database to a new file", runBackup},
		{"restore", "replace the SQLite database with a backup, then migrate it", runRestore},
		{"healthcheck", "exit 0 when the local server is ready, 1 otherwise (container HEALTHCHECK)", runHealthcheck},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code: 0 on
// success, 1 when the command failed, 2 for a usage error.
func run(ctx context.Context, args []string, e env) int {
	cmd, rest, ok := findCommand(args)
	if !ok {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			printUsage(e.stdout)
			return 0
		}
		if len(args) == 0 {
			fmt.Fprintln(e.stderr, "sso: missing command")
		} else {
			fmt.Fprintf(e.stderr, "sso: unknown command %q\n", strings.Join(args[:min(len(args), 2)], " "))
		}
		printUsage(e.stderr)
		return 2
	}
	err := cmd.run(ctx, e, rest)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "sso %s: %s\n", cmd.name, ue.msg)
		return 2
	default:
		fmt.Fprintf(e.stderr, "sso %s: %s\n", cmd.name, oneLine(err.Error()))
		return 1
	}
}

func findCommand(args []string) (command, []string, bool) {
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: sso <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'sso <command> -h' for the flags of a command. Every command also takes the configuration flags (see README).")
}

// oneLine keeps failure messages to the one line operators' scripts expect.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
