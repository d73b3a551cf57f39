/* backends/http.c — the HTTP layer of the cloud backends (not built yet). */
#include "backends/http.h"
