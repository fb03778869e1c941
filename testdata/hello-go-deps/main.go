// The Go sample with a third-party module (golang.org/x/text), so its build info
// lists a dependency whose packages the code attribution must group under it.
package main

import (
	"fmt"
	"os"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

func main() {
	name := "world"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	tag := language.Make(os.Getenv("LANG_TAG"))
	fmt.Println(cases.Title(tag).String("hello, " + norm.NFC.String(name)))
}
