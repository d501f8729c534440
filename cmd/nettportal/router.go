package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/routeros"
)

func runRouter(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	sub, args, fs, dbURL, err := subcommandFlags("router", "add, list or rm", args, stderr)
	if err != nil {
		return err
	}
	keyFile := fs.String("secret-key-file", defaultSecretKeyFile, "key that encrypts RouterOS API passwords (as for serve; "+secretKeyEnv+" overrides it)")
	var r nettportal.Router
	var ip string
	var interim time.Duration
	var secretFile, apiPasswordFile string
	switch sub {
	case "add":
		fs.StringVar(&r.Name, "name", "", "router name (its RouterOS identity)")
		fs.StringVar(&ip, "ip", "", "address its RADIUS packets come from (NAS-IP)")
		fs.StringVar(&r.Secret, "secret", "", "RADIUS shared secret (visible in ps and shell history: prefer --secret-file, $"+radiusSecretSrc().env+" or the prompt)")
		fs.StringVar(&secretFile, "secret-file", "", "read the RADIUS secret from this file's first line (- for stdin)")
		fs.IntVar(&r.CoAPort, "coa-port", nettportal.DefaultCoAPort, "the router's /radius incoming port")
		fs.StringVar(&r.APIAddr, "api-addr", "", "RouterOS API host:port (8728, or 8729 with --api-tls)")
		fs.StringVar(&r.APIUser, "api-user", "", "RouterOS API user")
		fs.StringVar(&r.APIPassword, "api-password", "", "RouterOS API password (visible in ps: prefer --api-password-file or $"+apiPasswordSrc().env+")")
		fs.StringVar(&apiPasswordFile, "api-password-file", "", "read the RouterOS API password from this file's first line (- for stdin)")
		fs.BoolVar(&r.APITLS, "api-tls", false, "use TLS for the RouterOS API (api-ssl); its certificate is verified against the system roots unless pinned or given a CA")
		fs.StringVar(&r.APITLSFingerprint, "api-tls-fingerprint", "", "pin the api-ssl certificate by SHA-256 (as `router trust` prints it); the way to use RouterOS's self-signed certificate")
		fs.StringVar(&r.APITLSCAFile, "api-tls-ca-file", "", "PEM file of CAs that signed the api-ssl certificate")
		fs.BoolVar(&r.APITLSInsecure, "api-tls-insecure", false, "do NOT verify the api-ssl certificate (anyone on the path can take the API password; warned in the log and on the routers page)")
		fs.DurationVar(&interim, "interim", nettportal.DefaultInterimInterval, "the router's interim-update interval")
		fs.StringVar(&r.Description, "description", "", "free text")
	case "trust":
		addr := fs.String("api-addr", "", "RouterOS api-ssl host[:port] (8729)")
		if err := parseFlags(fs, args, getenv); err != nil {
			return err
		}
		if *addr == "" {
			return fmt.Errorf("router trust needs --api-addr")
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cert, err := routeros.FetchCertificate(tctx, *addr)
		if err != nil {
			return fmt.Errorf("router trust: %w", err)
		}
		fmt.Fprintf(stdout, "subject:     %s\nissuer:      %s\nvalid until: %s\nsha256:      %s\n\n", cert.Subject, cert.Issuer,
			cert.NotAfter.UTC().Format(time.RFC3339), routeros.CertFingerprint(cert))
		fmt.Fprintf(stdout, "Compare the fingerprint with the router's (/certificate print detail), then pin it:\n  nettportal router add ... --api-tls --api-tls-fingerprint %s\n", routeros.CertFingerprint(cert))
		return nil
	case "list":
	case "rm":
		fs.StringVar(&r.Name, "name", "", "router name, id or IP (or give it as the argument)")
	default:
		return fmt.Errorf("unknown router subcommand %q (add, list, rm, trust)", sub)
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	db, err := openDB(ctx, *dbURL, 2, zerolog.Nop())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := useSecretKey(ctx, db, *keyFile, getenv(secretKeyEnv)); err != nil {
		return err
	}

	switch sub {
	case "add":
		var err error
		if r.Secret, err = radiusSecretSrc().resolve(r.Secret, secretFile, getenv, stderr); err != nil {
			return err
		}
		// The API password is optional: no prompt for it.
		if apiPasswordFile != "" || getenv(apiPasswordSrc().env) != "" {
			if r.APIPassword, err = apiPasswordSrc().resolve(r.APIPassword, apiPasswordFile, getenv, stderr); err != nil {
				return err
			}
		}
		if r.APITLSFingerprint != "" {
			fp, err := routeros.NormalizeFingerprint(r.APITLSFingerprint)
			if err != nil {
				return fmt.Errorf("--api-tls-fingerprint: %w", err)
			}
			r.APITLSFingerprint = fp
		}
		if r.APITLSInsecure && (r.APITLSFingerprint != "" || r.APITLSCAFile != "") {
			return fmt.Errorf("--api-tls-insecure contradicts --api-tls-fingerprint and --api-tls-ca-file")
		}
		if r.Name == "" || ip == "" || r.Secret == "" {
			return fmt.Errorf("router add needs --name, --ip and --secret")
		}
		if r.IP, err = netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("--ip %q is not an IP address", ip)
		}
		r.InterimInterval = interim
		if err := db.CreateRouter(ctx, &r); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "router %s added (id %d, %s)\n", r.Name, r.ID, r.IP)
	case "list":
		routers, err := db.Routers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tIP\tCOA PORT\tAPI\tINTERIM")
		for _, r := range routers {
			api := "-"
			if r.HasAPI() {
				api = r.APIUser + "@" + r.APIAddr
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Name, r.IP, r.CoAPort, api, r.InterimInterval)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		skipped, err := db.SkippedNAS(ctx)
		if err != nil || len(skipped) == 0 {
			return err
		}
		fmt.Fprintf(stdout, "\nskipped nas rows (kept for FreeRADIUS, not routers here):\n")
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tNASNAME\tREASON")
		for _, n := range skipped {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", n.ID, n.ShortName, n.NASName, n.Reason)
		}
		return tw.Flush()
	case "rm":
		key := r.Name
		if key == "" && fs.NArg() == 1 {
			key = fs.Arg(0)
		}
		if key == "" {
			return fmt.Errorf("router rm needs the router's name, id or IP")
		}
		if err := db.DeleteRouter(ctx, key); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "router %s removed\n", key)
	}
	return nil
}
