package cloud

import (
	"errors"

	"github.com/gophercloud/gophercloud/v2"
)

// IsDeterministic reports whether err is a refusal that every console of
// the run would meet the same way: the cloud answered with a client
// error (400 bad request, 401 unauthorised, 403 forbidden or over quota,
// 404 no such image or flavor, 406 microversion not supported, 409, 413
// over limit). Other consoles of the run need not be provisioned just to
// be refused; a server that went to ERROR, a timeout or a 5xx may be one
// console's bad luck, and is not.
func IsDeterministic(err error) bool {
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		return code.Actual >= 400 && code.Actual < 500 && code.Actual != 408 && code.Actual != 429
	}
	var pcode *gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &pcode) && pcode != nil {
		return pcode.Actual >= 400 && pcode.Actual < 500 && pcode.Actual != 408 && pcode.Actual != 429
	}
	return false
}
