// Package crashtest kills linkaud with a real SIGKILL at many points of a
// compute cycle and of delivery, restarts it, and checks that a crash
// anywhere loses nothing and invents nothing (DESIGN.md, "Semantics of a
// compute cycle"; "Delivery is at-least-once").
//
// The tests build linkaud with the `crashpoints` build tag (see
// internal/crashpoint) and run it as a subprocess on a generated bank +
// household workspace (internal/gen) over four steps, the data changing
// before each: gen.Mutate twice (the next hours' data), then a swap to data
// of another seed. A clean run gives the reference events, which are
// themselves checked against the memberships `linkaud preview` finds at
// each step. Then:
//
//   - TestCrashPoints kills `linkaud run` at the N-th hit of each named
//     point, starting from the clean run's state before that step, and
//     runs the later steps too;
//   - TestRandomKills kills `linkaud run` from outside after random
//     delays, several times a step;
//   - TestUpgradeCrashPoints starts from a state written by the linkaud
//     of before per-(profile, entity) events (engine/testdata), kills the
//     current binary at every crash point of four steps and compares with
//     a clean upgrade (no rewrite of the state is needed: the upgrade is
//     the new version's first cycles on the old rows);
//   - TestWorkerKills runs `linkaud worker` as the only thing computing
//     and delivering (asked over its HTTP API to run each audience once a
//     step) and kills it at random times while it computes and delivers.
//
// After every kill the state is reopened with `linkaud audiences DIR list
// --json` and every audience must be Live, Failed with a reason, or
// Computing before its first cycle; the step is then finished as an
// operator (or the restarted worker) would. At the end the delivered
// events, deduplicated by messageId, must equal the clean run's exactly;
// a messageId delivered twice must carry the same bytes, and one event
// never comes under two messageIds. TestMain prints a summary line: kills
// survived, per crash point, state checks, duplicates.
//
// CI runs a sample (each point crashed at one hit in two of the steps,
// two random scenarios, one worker scenario); LINKAUD_CRASH_FULL=1 runs every picked
// hit and more scenarios (`make test-crash`). LINKAUD_CRASH_RANDOM,
// LINKAUD_CRASH_WORKER and LINKAUD_CRASH_SEED set the scenario counts and
// the seed of the random delays.
//
// The package has tests only.
package crashtest
