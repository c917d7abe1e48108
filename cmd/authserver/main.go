package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "authserver:", err)
		os.Exit(1)
	}
}

// run executes the command line args. It returns when the command is done,
// or for serve, after ctx is cancelled and the server has shut down.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	root := newRootCommand(stdin, stdout, stderr, lookupEnv)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	opts := &options{lookupEnv: lookupEnv, stderr: stderr}
	root := &cobra.Command{
		Use:           "authserver",
		Short:         "The QuanuX OAuth 2.0 token server",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return opts.resolve(cmd)
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	opts.addStoreFlags(root.PersistentFlags())

	root.AddCommand(
		newServeCommand(opts),
		newMigrateCommand(opts),
		newUsersCommand(opts),
		newClientsCommand(opts),
		newKeysCommand(opts),
		newHealthcheckCommand(),
		newConfigCommand(opts),
		newAuditCommand(opts),
	)
	return root
}
