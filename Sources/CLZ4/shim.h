// The LZ4 frame format (liblz4-dev), wrapped by the Archive module.
#include <lz4frame.h>
