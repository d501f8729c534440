package radius

import (
	"testing"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2866"
)

// TestAuthenticRequestAgreesWithLayeh: the constant-time check accepts
// exactly what layeh's check accepts for an Accounting-Request, for a signed packet and for every
// single-bit change of its authenticator, code, length or attributes.
func TestAuthenticRequestAgreesWithLayeh(t *testing.T) {
	secret := []byte("s3cret")
	p := rad.New(rad.CodeAccountingRequest, secret)
	if err := rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_Start); err != nil {
		t.Fatal(err)
	}
	if err := rfc2866.AcctSessionID_SetString(p, "81a00001"); err != nil {
		t.Fatal(err)
	}
	raw, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !authenticRequest(raw, secret) {
		t.Fatal("a correctly signed request was refused")
	}
	if authenticRequest(raw, []byte("other")) {
		t.Fatal("accepted with the wrong secret")
	}
	if authenticRequest(raw, nil) || authenticRequest(raw[:19], secret) {
		t.Fatal("accepted with no secret or a short packet")
	}
	for i := range raw {
		for bit := 0; bit < 8; bit++ {
			changed := append([]byte(nil), raw...)
			changed[i] ^= 1 << bit
			// layeh accepts any Access-Request or Status-Server unchecked;
			// decodePacket refuses those codes before this check.
			want := rad.Code(changed[0]) == rad.CodeAccountingRequest && rad.IsAuthenticRequest(changed, secret)
			if got := authenticRequest(changed, secret); got != want {
				t.Fatalf("octet %d bit %d: constant-time check says %v, layeh %v", i, bit, got, want)
			}
		}
	}
}
