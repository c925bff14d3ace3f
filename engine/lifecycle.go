package engine

import (
	"fmt"
	"path/filepath"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// An audience whose block says `enabled true|false` is enabled or disabled
// by its file (GitOps: the repository is the one source of truth). The
// state follows the file whenever the engine opens or reloads a workspace,
// and `linkaud audiences enable|disable` (and the worker's API) refuse it.
// Without `enabled` the state alone decides, as set by those commands.

// ErrDeclared is matched by the error of an enable or disable of an
// audience whose file says `enabled`.
var ErrDeclared = fmt.Errorf("engine: the audience's file says whether it is enabled")

// declaredError refuses to set audience a enabled (on) or disabled.
func declaredError(a *dsl.Audience, on bool) error {
	verb := map[bool]string{true: "enable", false: "disable"}[on]
	return &sentinelError{ErrDeclared, fmt.Sprintf("cannot %s audience %s: its file decides (%s: enabled %t); edit the file to change it",
		verb, a.Name, declaredAt(a), *a.Enabled)}
}

func declaredAt(a *dsl.Audience) string {
	p := a.EnabledRange.Start
	return fmt.Sprintf("%s:%d:%d", filepath.Base(p.Filename), p.Line, p.Column)
}

// applyDeclared makes store follow the `enabled` of ws's audiences.
func applyDeclared(ws *dsl.Workspace, store *diff.Store) error {
	for _, a := range ws.Audiences {
		if a.Enabled == nil {
			continue
		}
		var err error
		if *a.Enabled {
			err = store.Enable(a.Name)
		} else {
			err = store.Disable(a.Name)
		}
		if err != nil {
			return fmt.Errorf("audience %s: applying its file's enabled %t: %w", a.Name, *a.Enabled, err)
		}
	}
	return nil
}

// declaredState is st as it is once the state follows a's `enabled`: what
// a read-only view shows before a process that writes the state applied
// the file (the statuses are those of diff.Store.Enable and Disable).
func declaredState(a *dsl.Audience, st diff.AudienceState) diff.AudienceState {
	if a.Enabled == nil || st.Enabled == *a.Enabled {
		return st
	}
	st.Enabled = *a.Enabled
	switch {
	case !st.Enabled:
		st.Status = diff.Disabled
	case st.Error != "":
		st.Status = diff.Failed
	case st.Generation > 0:
		st.Status = diff.Live
	default:
		st.Status = diff.Computing
	}
	return st
}
