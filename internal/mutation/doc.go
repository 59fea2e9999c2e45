// Package mutation holds the mutation tests of the code that guards money
// (issue 19, docs/mutation.md): a committed table of hand-written mutants,
// the edits a careless change would make, each applied to a copy of the
// module and run against the tests that must catch it. It has no code of
// its own; make mutation runs it (PAYFLOW_MUTATION=all) with the Lua
// mutant table and gremlins.
package mutation
