/* A C program for ballast's forensics tests: plain gcc, glibc, dynamic. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("hello-c 1.0");
        return 0;
    }
    printf("hello from C\n");
    return 0;
}
