package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/store"
)

func runUser(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	sub, args, fs, dbURL, err := subcommandFlags("user", "add, passwd, list or rm", args, stderr)
	if err != nil {
		return err
	}
	var name, password, role, passwordFile string
	switch sub {
	case "add":
		fs.StringVar(&name, "name", "", "login name")
		fs.StringVar(&password, "password", "", "password, at least 8 characters (visible in ps and shell history: prefer --password-file, $"+userPasswordSrc().env+" or the prompt)")
		fs.StringVar(&passwordFile, "password-file", "", "read the password from this file's first line (- for stdin)")
		fs.StringVar(&role, "role", "", "admin, operator or viewer")
	case "passwd":
		fs.StringVar(&name, "name", "", "login name")
		fs.StringVar(&password, "password", "", "new password, at least 8 characters (prefer --password-file, $"+userPasswordSrc().env+" or the prompt)")
		fs.StringVar(&passwordFile, "password-file", "", "read the password from this file's first line (- for stdin)")
	case "list":
	case "rm":
		fs.StringVar(&name, "name", "", "login name (or give it as the argument)")
	default:
		return fmt.Errorf("unknown user subcommand %q (add, passwd, list, rm)", sub)
	}
	if err := parseNamed(fs, args, getenv, sub == "rm", &name); err != nil {
		return err
	}
	if sub == "add" || sub == "passwd" {
		var err error
		if password, err = userPasswordSrc().resolve(password, passwordFile, getenv, stderr); err != nil {
			return err
		}
	}
	switch {
	case sub == "add" && (name == "" || password == "" || role == ""):
		return fmt.Errorf("user add needs --name, --password and --role (admin, operator or viewer)")
	case sub == "passwd" && (name == "" || password == ""):
		return fmt.Errorf("user passwd needs --name and --password")
	case sub == "rm" && name == "":
		return fmt.Errorf("user rm needs --name")
	}
	r, db, err := roleAndDB(ctx, sub, role, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "add":
		u, err := db.CreateUser(ctx, name, password, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s added (%s)\n", u.Name, u.Role)
	case "passwd":
		if err := db.SetPassword(ctx, name, password); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed; their logins were ended\n", name)
	case "list":
		users, err := db.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", u.ID, u.Name, u.Role, u.CreatedAt.Format(time.DateTime))
		}
		return tw.Flush()
	case "rm":
		if err := db.DeleteUser(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s removed\n", name)
	}
	return nil
}

// roleAndDB checks --role (parseRoleFlag), then opens the database.
func roleAndDB(ctx context.Context, sub, role, dbURL string) (nettportal.Role, *store.DB, error) {
	r, err := parseRoleFlag(sub, role)
	if err != nil {
		return "", nil, err
	}
	db, err := openDB(ctx, dbURL, 2, zerolog.Nop())
	if err != nil {
		return "", nil, err
	}
	return r, db, nil
}

// parseRoleFlag checks --role for the subcommands that take one.
func parseRoleFlag(sub, role string) (nettportal.Role, error) {
	if sub != "add" && sub != "create" {
		return "", nil
	}
	r, err := nettportal.ParseRole(role)
	if err != nil {
		return "", fmt.Errorf("--role %q: use admin, operator or viewer", role)
	}
	return r, nil
}

func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	sub, args, fs, dbURL, err := subcommandFlags("token", "create, list or revoke", args, stderr)
	if err != nil {
		return err
	}
	var name, role string
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "what the token is for (e.g. billing)")
		fs.StringVar(&role, "role", "viewer", "admin, operator or viewer")
	case "list":
	case "revoke":
		fs.StringVar(&name, "name", "", "token name (or give it as the argument)")
	default:
		return fmt.Errorf("unknown token subcommand %q (create, list, revoke)", sub)
	}
	if err := parseNamed(fs, args, getenv, sub == "revoke", &name); err != nil {
		return err
	}
	if (sub == "create" || sub == "revoke") && name == "" {
		return fmt.Errorf("token %s needs --name", sub)
	}
	r, db, err := roleAndDB(ctx, sub, role, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "create":
		secret, err := db.CreateToken(ctx, name, r)
		if err != nil {
			return err
		}
		// The secret alone on stdout, so scripts can capture it; it is
		// stored only as a hash and cannot be shown again.
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "token %s (%s) created; use it as 'Authorization: Bearer <token>'. It is not shown again.\n", name, r)
	case "list":
		toks, err := db.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tLAST USED\tREVOKED")
		for _, t := range toks {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.CreatedAt.Format(time.DateTime),
				optTime(t.LastUsedAt), optTime(t.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if err := db.RevokeToken(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token %s revoked\n", name)
	}
	return nil
}

func optTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.DateTime)
}
