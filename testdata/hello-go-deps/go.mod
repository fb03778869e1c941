module example.com/hello-deps

go 1.19

require golang.org/x/text v0.7.0

// Debian's golang-golang-x-text-dev: a real third-party module, without a network.
replace golang.org/x/text => /usr/share/gocode/src/golang.org/x/text
