package debugserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// --debugaddr serves /metrics too, as buildkitd's does.
func TestHandlerServesMetrics(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "s3cache_imports_total") {
		t.Fatalf("/metrics: %d\n%s", rec.Code, rec.Body.String())
	}
}
