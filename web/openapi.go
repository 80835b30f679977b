package web

import (
	_ "embed"
	"net/http"
)

// openAPISpec describes the API. TestOpenAPI checks it against the
// handlers: every route is described, and every answer the tests provoke
// validates against it.
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPI returns the API description.
func OpenAPI() []byte { return append([]byte(nil), openAPISpec...) }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPISpec)
}
