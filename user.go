package nettportal

import (
	"fmt"
	"time"
)

// Role is what a user or API token may do. Roles are ordered: each one can
// do everything the roles below it can.
type Role string

// The roles, from least to most powerful.
const (
	// RoleViewer sees sessions, routers and customers.
	RoleViewer Role = "viewer"
	// RoleOperator also disconnects sessions, changes their speed and reads
	// the control audit.
	RoleOperator Role = "operator"
	// RoleAdmin also manages routers, users and tokens.
	RoleAdmin Role = "admin"
)

// ParseRole checks that s names a role.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", fmt.Errorf("role %q is not admin, operator or viewer: %w", s, ErrInvalid)
	}
	return r, nil
}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// AtLeast reports whether r includes the rights of min. An unknown role
// has no rights at all.
func (r Role) AtLeast(min Role) bool { return r.rank() > 0 && r.rank() >= min.rank() }

// User is an operator of the web page, or the identity behind an API token
// (then Token is true and Name is the token's name).
type User struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Token     bool      `json:"token,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// Actor is how the audit names who acted: the user name, or "token:NAME".
func (u User) Actor() string {
	if u.Token {
		return "token:" + u.Name
	}
	return u.Name
}

// Token is an API token for scripts and billing systems. Only a hash of the
// secret is stored; the secret is shown once, when the token is created.
type Token struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// Customer is a subscriber from the billing system, linked to sessions by
// PPPoE username.
type Customer struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Username  string    `json:"username"`
	Profile   string    `json:"profile"`
	Phone     string    `json:"phone"`
	Address   string    `json:"address"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
