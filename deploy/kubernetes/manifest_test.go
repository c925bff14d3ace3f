// Package kubernetes holds the example Kubernetes manifests of linkaud
// (statefulset.yaml) and the test that checks them against the fields
// Kubernetes requires of a StatefulSet and against linkaud's own flags.
package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/linkaud/linkaud/engine"
)

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec yaml.Node `yaml:"spec"`
}

type statefulSetSpec struct {
	ServiceName string `yaml:"serviceName"`
	Replicas    int    `yaml:"replicas"`
	Selector    struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Containers []struct {
				Name  string   `yaml:"name"`
				Image string   `yaml:"image"`
				Args  []string `yaml:"args"`
				Env   []struct {
					Name      string `yaml:"name"`
					ValueFrom struct {
						FieldRef struct {
							FieldPath string `yaml:"fieldPath"`
						} `yaml:"fieldRef"`
					} `yaml:"valueFrom"`
				} `yaml:"env"`
				VolumeMounts []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	} `yaml:"volumeClaimTemplates"`
}

// TestStatefulSet: the manifest parses, holds a well-formed apps/v1
// StatefulSet (the fields Kubernetes requires), and runs every replica as
// a valid, distinct shard of as many workers as there are replicas, each
// with its state on a volume of its own.
func TestStatefulSet(t *testing.T) {
	b, err := os.ReadFile("statefulset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var set *statefulSetSpec
	for {
		var o object
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("an object without apiVersion, kind or metadata.name: %+v", o)
		}
		if o.Kind != "StatefulSet" {
			continue
		}
		if o.APIVersion != "apps/v1" {
			t.Errorf("StatefulSet apiVersion %q, want apps/v1", o.APIVersion)
		}
		set = &statefulSetSpec{}
		if err := o.Spec.Decode(set); err != nil {
			t.Fatal(err)
		}
	}
	if set == nil {
		t.Fatal("no StatefulSet")
	}
	if set.ServiceName == "" || set.Replicas < 1 || len(set.Selector.MatchLabels) == 0 {
		t.Fatalf("serviceName, replicas and selector are required: %+v", set)
	}
	for k, v := range set.Selector.MatchLabels {
		if set.Template.Metadata.Labels[k] != v {
			t.Errorf("the selector's %s=%s does not match the pod template's labels", k, v)
		}
	}
	if len(set.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(set.Template.Spec.Containers))
	}
	c := set.Template.Spec.Containers[0]
	if len(c.Args) < 2 || c.Args[0] != "worker" || c.Image == "" {
		t.Fatalf("the container runs %q from %q, want linkaud worker DIR", c.Args, c.Image)
	}
	flags := map[string]string{}
	for _, a := range c.Args[2:] {
		k, v, _ := strings.Cut(a, "=")
		flags[k] = v
	}
	envFrom := map[string]string{}
	for _, e := range c.Env {
		envFrom[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	if envFrom["POD_INDEX"] != "metadata.labels['apps.kubernetes.io/pod-index']" {
		t.Errorf("POD_INDEX comes from %q, want the pod-index label", envFrom["POD_INDEX"])
	}
	owned := map[string]int{}
	for ordinal := range set.Replicas {
		spec := strings.ReplaceAll(flags["--shard"], "$(POD_INDEX)", fmt.Sprint(ordinal))
		sh, err := engine.ParseShard(spec)
		if err != nil {
			t.Fatalf("pod %d: --shard %s: %v", ordinal, spec, err)
		}
		if sh.K != ordinal || sh.N != set.Replicas {
			t.Errorf("pod %d runs shard %s of a %d-replica set", ordinal, sh, set.Replicas)
		}
		for i := range 300 {
			if name := fmt.Sprintf("audience_%d", i); sh.Owns(name) {
				owned[name]++
			}
		}
	}
	if len(owned) != 300 {
		t.Errorf("the pods own %d of 300 audiences", len(owned))
	}
	for name, n := range owned {
		if n != 1 {
			t.Errorf("%s is owned by %d pods", name, n)
		}
	}
	state := flags["--state"]
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.Name == set.VolumeClaimTemplates[0].Metadata.Name && strings.HasPrefix(state, m.MountPath+"/") {
			mounted = true
		}
	}
	if state == "" || !mounted {
		t.Errorf("--state %q is not on the pod's own volume (a volumeClaimTemplate)", state)
	}
}
