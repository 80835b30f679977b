package web

import (
	_ "embed"
	"net/http"
)

// openAPISpec describes the API. The tests hold the handlers to it
// (apiCheck in stack_test.go): every route is described, every described
// operation is exercised, and every answer validates against it.
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
