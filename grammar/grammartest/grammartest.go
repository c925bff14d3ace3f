// Package grammartest helps tests compare parse trees and checked IR
// without their source positions. Entry point: ClearPositions.
package grammartest

import (
	"reflect"

	"github.com/linkaud/linkaud/grammar"
)

// ClearPositions zeroes every grammar.Pos reachable from v (a pointer):
// two trees or IRs of the same text formatted differently are then equal
// under reflect.DeepEqual.
func ClearPositions(v any) {
	clear(reflect.ValueOf(v), map[uintptr]bool{})
}

func clear(v reflect.Value, seen map[uintptr]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		clear(v.Elem(), seen)
	case reflect.Interface:
		if !v.IsNil() {
			// The value in an interface is not addressable: copy, clear, put back.
			c := reflect.New(v.Elem().Type()).Elem()
			c.Set(v.Elem())
			clear(c, seen)
			if v.CanSet() {
				v.Set(c)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			clear(v.Index(i), seen)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			c := reflect.New(v.Type().Elem()).Elem()
			c.Set(v.MapIndex(k))
			clear(c, seen)
			v.SetMapIndex(k, c)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(grammar.Pos{}) {
			if v.CanSet() {
				v.SetZero()
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				clear(v.Field(i), seen)
			}
		}
	}
}
