#ifndef KILN_CZLIB_SHIM_H
#define KILN_CZLIB_SHIM_H
// Debian's zlib (zlib1g-dev), for reading gzipped IDX files.
#include <zlib.h>
#endif
