package store

import (
	"errors"
	"net/http"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestConditionalErr(t *testing.T) {
	answer := func(status int, code, msg string) error {
		return &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: msg},
		}
	}
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"412", answer(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"), ErrPreconditionFailed},
		{"409 conflict", answer(409, "ConditionalRequestConflict", "A conflicting conditional operation is in progress"), ErrPreconditionFailed},
		{"501", answer(501, "NotImplemented", "A header you provided implies functionality that is not implemented"), ErrConditionalNotSupported},
		{"400 naming the header", answer(400, "InvalidArgument", "If-None-Match is not supported"), ErrConditionalNotSupported},
		{"400 other", answer(400, "InvalidArgument", "bad part number"), nil},
		{"403", answer(403, "AccessDenied", "Access Denied"), nil},
	} {
		got := conditionalErr(tt.err)
		if !errors.Is(got, tt.err) {
			t.Errorf("%s: %v lost its cause", tt.name, got)
		}
		for _, sentinel := range []error{ErrPreconditionFailed, ErrConditionalNotSupported} {
			if errors.Is(got, sentinel) != (sentinel == tt.want) {
				t.Errorf("%s: errors.Is(%v, %v) = %t", tt.name, got, sentinel, !(sentinel == tt.want))
			}
		}
	}
}
