// crdcheck validates weir's CRDs and objects as the API server would, without one.
//
// First each CRD file named on the command line is validated as a CRD create
// (structural schema, CEL compilation and estimated cost): "valid" or the errors,
// exit 1 on any. Then, with -objects, it reads JSON objects (one per line) on
// stdin and prints, per object, "ok <the stored object>" or "refused: <errors>",
// after what a create does: defaulting, unknown-field pruning (refused, as with
// strict field validation), the OpenAPI schema, list-map keys and CEL rules.
//
//	cd tests/controller/crdcheck && go build -o /tmp/crdcheck .
//	/tmp/crdcheck crds/weir.dev_*.yaml
//	.venv/bin/python tests/support/specagree.py -n 12000   # pydantic vs this
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"

	"fmt"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"os"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

type kind struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

func load(path string) (string, kind) {
	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	var v1 apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &v1); err != nil {
		panic(err)
	}
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(&v1)
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &internal, nil); err != nil {
		panic(err)
	}
	if errs := validation.ValidateCustomResourceDefinition(context.TODO(), &internal); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, path, "INVALID:", e)
		}
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, path, "valid")
	var props *apiextensions.JSONSchemaProps
	if internal.Spec.Versions[0].Schema != nil {
		props = internal.Spec.Versions[0].Schema.OpenAPIV3Schema
	} else {
		props = internal.Spec.Validation.OpenAPIV3Schema
	}
	s, err := structuralschema.NewStructural(props)
	if err != nil {
		panic(err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(props)
	if err != nil {
		panic(err)
	}
	return internal.Spec.Names.Kind, kind{s, validator, cel.NewValidator(s, true, celconfig.PerCallLimit)}
}

func main() {
	objects := flag.Bool("objects", false, "then validate JSON objects from stdin")
	flag.Parse()
	kinds := map[string]kind{}
	for _, path := range flag.Args() {
		name, k := load(path)
		kinds[name] = k
	}
	if !*objects {
		return
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 16<<20), 16<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var obj map[string]interface{}
		if err := utiljson.Unmarshal(in.Bytes(), &obj); err != nil {
			fmt.Fprintf(out, "refused: not JSON: %v\n", err)
			continue
		}
		k, ok := kinds[fmt.Sprint(obj["kind"])]
		if !ok {
			fmt.Fprintln(out, "refused: unknown kind")
			continue
		}
		defaulting.Default(obj, k.structural)
		unknown := pruning.PruneWithOptions(obj, k.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
		var errs field.ErrorList
		for _, path := range unknown {
			if !strings.HasPrefix(path, "metadata.") {
				errs = append(errs, field.Invalid(field.NewPath(path), "", "unknown field"))
			}
		}
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, k.validator)...)
		errs = append(errs, listtype.ValidateListSetsAndMaps(nil, k.structural, obj)...)
		if len(errs) == 0 {
			celErrs, _ := k.cel.Validate(context.TODO(), nil, k.structural, obj, nil, celconfig.RuntimeCELCostBudget)
			errs = append(errs, celErrs...)
		}
		if len(errs) == 0 {
			stored, _ := json.Marshal(obj)
			fmt.Fprintf(out, "ok %s\n", stored)
		} else {
			fmt.Fprintf(out, "refused: %s\n", strings.ReplaceAll(errs.ToAggregate().Error(), "\n", " "))
		}
	}
}
