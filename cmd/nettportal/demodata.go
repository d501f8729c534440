package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/sim"
)

// demoCustomerShare is the share of demo subscribers with a customer
// record; the rest show as they do on a real network where the billing
// export lags behind the routers.
const demoCustomerShare = 0.85

var (
	demoFirstNames = []string{"Ola", "Kari", "Lars", "Ingrid", "Nils", "Sigrid", "Erik", "Astrid", "Magnus", "Hilde",
		"Jonas", "Marte", "Anders", "Silje", "Henrik", "Ida", "Per", "Nora", "Tor", "Emma"}
	demoLastNames = []string{"Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
		"Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen"}
	demoStreets = []string{"Storgata", "Kirkeveien", "Skolegata", "Fjordveien", "Bakkeveien", "Solbakken", "Elvegata", "Granveien"}
	demoTowns   = []string{"0150 Oslo", "5003 Bergen", "7011 Trondheim", "4006 Stavanger", "9008 Tromsø", "3015 Drammen"}
)

// demoCustomers makes the customer records of a demo fleet's subscribers:
// names, phone numbers, addresses and the plan each subscriber's router
// applies, as a billing system would export them.
func demoCustomers(routers []string, sessions int, plans []sim.Plan, seed uint64) []nettportal.Customer {
	rng := rand.New(rand.NewPCG(seed, 15))
	var out []nettportal.Customer
	for _, name := range routers {
		for i := range sessions {
			if rng.Float64() >= demoCustomerShare {
				continue
			}
			c := nettportal.Customer{
				// The sim's usernames: see sim.Router.
				Username: fmt.Sprintf("u%04d@%s", i+1, name),
				Name:     demoFirstNames[rng.IntN(len(demoFirstNames))] + " " + demoLastNames[rng.IntN(len(demoLastNames))],
				Phone:    fmt.Sprintf("+47 %03d %02d %03d", 400+rng.IntN(600), rng.IntN(100), rng.IntN(1000)),
				Address: fmt.Sprintf("%s %d, %s", demoStreets[rng.IntN(len(demoStreets))], 1+rng.IntN(120),
					demoTowns[rng.IntN(len(demoTowns))]),
			}
			if len(plans) > 0 {
				c.Profile = plans[i%len(plans)].Name
			}
			out = append(out, c)
		}
	}
	return out
}

// saveDemoCustomers writes the customers, replacing earlier runs' records
// of the same usernames.
func saveDemoCustomers(ctx context.Context, save func(context.Context, *nettportal.Customer) (bool, error), cs []nettportal.Customer) error {
	for i := range cs {
		if _, err := save(ctx, &cs[i]); err != nil {
			return fmt.Errorf("save demo customer %s: %w", cs[i].Username, err)
		}
	}
	return nil
}
