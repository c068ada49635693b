// Command argocd-render renders Argo CD notification templates the way the notifications controller does
// (argoproj/notifications-engine: text/template with sprig's TxtFuncMap less env and expandenv), so a test can
// check the body our ConfigMap produces for a real Application object.
//
// Input on stdin, JSON: {"templates": {"<name>": "<template text>", ...}, "vars": {"app": {...}, "context": {...}}}.
// Output on stdout, JSON: {"<name>": "<rendered text>", ...}. A template that fails to parse or run exits 1.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

type input struct {
	Templates map[string]string `json:"templates"`
	Vars      map[string]any    `json:"vars"`
}

func funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	// The notifications engine removes these two so that templates cannot read the controller's environment.
	delete(f, "env")
	delete(f, "expandenv")
	return f
}

func render(in input) (map[string]string, error) {
	out := map[string]string{}
	for name, text := range in.Templates {
		tmpl, err := template.New(name).Funcs(funcs()).Parse(text)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, in.Vars); err != nil {
			return nil, fmt.Errorf("rendering %s: %w", name, err)
		}
		out[name] = buf.String()
	}
	return out, nil
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "argocd-render: expected JSON {\"templates\": ..., \"vars\": ...} on stdin: %v\n", err)
		os.Exit(1)
	}
	out, err := render(in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "argocd-render: %v\n", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "argocd-render: %v\n", err)
		os.Exit(1)
	}
}
