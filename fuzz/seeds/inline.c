/* Go 1.18+ inline build info: header then two uvarint-prefixed strings. */
#define MOD "0w\xaf\x0c\x92t\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6" \
  "path\tx.io/a\nmod\tx.io/a\t(devel)\t\ndep\tx.io/b\tv1.0.0\th1:q=\n=>\tx.io/c\tv2.0.0\th1:r=\nbuild\t-ldflags=\"-s -w\"\nbuild\tCGO_ENABLED=0\n" \
  "\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2"
struct blob { char magic[14]; unsigned char ptrsize, flags; char pad[16]; unsigned char vlen; char v[8]; unsigned char mlen[2]; char m[sizeof MOD - 1]; } __attribute__((aligned(16)));
__attribute__((section(".go.buildinfo"), used)) struct blob buildinfo = {
    "\xff Go buildinf:", 8, 2, {0}, 8, "go1.19.8", { ((sizeof MOD - 1) & 0x7f) | 0x80, (sizeof MOD - 1) >> 7 }, MOD };
int main(void) { return buildinfo.flags; }
