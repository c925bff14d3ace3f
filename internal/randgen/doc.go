// Package randgen draws random test cases for the planner's differential
// test: a data graph (profile and up to seven entities, at most six levels,
// direct and many-to-many relationships, composite joins), its data (NULLs,
// duplicate and missing foreign keys, empty strings, unicode, quotes and
// backslashes, timestamps on window boundaries), and audiences over every
// construct of the language, all rendered as .la text so that they go
// through the real parser and checker.
//
// Entry points: New, Gen.Graph, Gen.Audiences, Gen.Enrich; a Case renders
// with Case.Source and Case.DataText, and shrinks with Shrink.
package randgen
