/* A pre-Go-1.18 build info blob (pointer format), laid out by the C compiler. */

struct gostring { const char *p; long n; };
static const char version[] = "go1.16.15";
static const char modinfo[] =
    "0w\xaf\x0c\x92t\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6"
    "path\texample.com/old\nmod\texample.com/old\tv0.1.0\th1:abc=\n"
    "dep\tgolang.org/x/sys\tv0.0.0-2021\th1:def=\n=>\t../sys\t(devel)\t\n"
    "\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2";
struct gostring vs = { version, sizeof version - 1 };
struct gostring ms = { modinfo, sizeof modinfo - 1 };
struct header { char magic[14]; unsigned char ptrsize, flags; struct gostring *v, *m; } __attribute__((aligned(16)));
__attribute__((section(".go.buildinfo"), used)) struct header buildinfo = {
    "\xff Go buildinf:", sizeof(void *), 0, &vs, &ms };
int main(void) { return buildinfo.flags; }
