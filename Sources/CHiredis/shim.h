// The hiredis C client (libhiredis-dev), wrapped by the Redis module.
#include <hiredis/hiredis.h>
