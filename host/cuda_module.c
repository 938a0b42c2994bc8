/* cuda_module: dlopen() of libspladex_cuda.so on first use, and the check of its one entry point
 * (see cuda_module.h). */
/* dladdr() is a GNU extension; this file alone asks for it. */
#define _GNU_SOURCE

#include "cuda_module.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

/* Looks up the entry point in the loaded module h (opened from path) and checks its table.
 * A refused module stays loaded: one built against CUDA libraries cannot be unloaded safely. */
static int cuda_module_check(void *h, const char *path, const spladex_cuda_api **api, char *why,
                             size_t why_cap) {
  *api = NULL;
  (void)dlerror();
  void *p = dlsym(h, SPLADEX_CUDA_API_SYMBOL);
  if (!p) {
    const char *d = dlerror();
    snprintf(why, why_cap, "%s is not a spladex CUDA backend module: it lacks %s (%s)", path,
             SPLADEX_CUDA_API_SYMBOL, d ? d : "null symbol");
    return ERR_DEVICE;
  }
  /* ISO C has no object-to-function pointer conversion; POSIX guarantees the representation. */
  spladex_cuda_api_get_fn *get;
  memcpy(&get, &p, sizeof get);
  const spladex_cuda_api *t = get();
  if (!t) {
    snprintf(why, why_cap, "the CUDA backend module %s returned no function table", path);
    return ERR_DEVICE;
  }
  if (t->abi_version != SPLADEX_CUDA_API_VERSION) {
    snprintf(why, why_cap,
             "the CUDA backend module %s has ABI version %u, but this spladex needs version %d "
             "(a module of another build: use the libspladex_cuda.so built with this spladex)",
             path, (unsigned)t->abi_version, SPLADEX_CUDA_API_VERSION);
    return ERR_DEVICE;
  }
  if (t->size != sizeof *t) {
    snprintf(why, why_cap,
             "the CUDA backend module %s has a function table of %u bytes for ABI version %d, but "
             "this spladex expects %zu bytes (a module of another build)",
             path, (unsigned)t->size, SPLADEX_CUDA_API_VERSION, sizeof *t);
    return ERR_DEVICE;
  }
  *api = t;
  return 0;
}

int cuda_module_open(const char *path, const spladex_cuda_api **api, char *why, size_t why_cap) {
  *api = NULL;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *d = dlerror();
    snprintf(why, why_cap, "the CUDA backend module %s could not be loaded: %s", path,
             d ? d : "unknown dlopen error");
    return ERR_DEVICE;
  }
  return cuda_module_check(h, path, api, why, why_cap);
}

#ifdef SPLADEX_HAVE_CUDA
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef SPLADEX_CUDA_MODULE
#define SPLADEX_CUDA_MODULE "libspladex_cuda.so"
#endif

static pthread_mutex_t cuda_module_lock = PTHREAD_MUTEX_INITIALIZER;
static const spladex_cuda_api *cuda_module_table; /* set once, under the lock */

/* Appends "dir/SPLADEX_CUDA_MODULE" of the file `file` to paths[*n] (when it fits). */
static void cuda_module_next_to(const char *file, char paths[][PATH_MAX], int *n) {
  const char *slash = strrchr(file, '/');
  if (!slash) return;
  int len = snprintf(paths[*n], PATH_MAX, "%.*s/%s", (int)(slash - file), file, SPLADEX_CUDA_MODULE);
  if (len <= 0 || len >= PATH_MAX) return;
  for (int i = 0; i < *n; i++)
    if (strcmp(paths[i], paths[*n]) == 0) return; /* the executable beside the core: once */
  (*n)++;
}

static int cuda_module_load_locked(char *why, size_t why_cap) {
  if (cuda_module_table) return 0;
  char paths[4][PATH_MAX];
  int n = 0;
  const char *env = getenv("SPLADEX_CUDA_LIB");
  if (env && *env) {
    snprintf(paths[n++], PATH_MAX, "%s", env);
  } else {
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
      exe[len] = '\0';
      cuda_module_next_to(exe, paths, &n);
    }
    Dl_info info;
    if (dladdr((void *)&cuda_module_table, &info) && info.dli_fname)
      cuda_module_next_to(info.dli_fname, paths, &n);
    snprintf(paths[n++], PATH_MAX, "%s", SPLADEX_CUDA_MODULE);
  }
  void *h = NULL;
  int used = -1;
  char first_err[1024] = "";
  size_t off = 0;
  char tried[4 * PATH_MAX + 64] = "";
  for (int i = 0; i < n && !h; i++) {
    /* A candidate path that does not exist is skipped quietly; one that exists but fails to load
     * (a missing libcublas, say) is the error worth reporting. The bare name always goes to
     * dlopen. */
    int is_path = strchr(paths[i], '/') != NULL;
    off += (size_t)snprintf(tried + off, sizeof tried - off, "%s%s", i ? ", " : "", paths[i]);
    if (off >= sizeof tried) off = sizeof tried - 1;
    if (is_path && access(paths[i], F_OK) != 0 && !(env && *env)) continue;
    h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    if (h) {
      used = i;
    } else if (!first_err[0]) {
      const char *d = dlerror();
      snprintf(first_err, sizeof first_err, "%s", d ? d : "unknown dlopen error");
    }
  }
  if (!h) {
    snprintf(why, why_cap, "the CUDA backend module %s could not be loaded: %s (tried: %s)",
             SPLADEX_CUDA_MODULE, first_err, tried);
    return ERR_DEVICE;
  }
  /* The first file that loads is the module: a refused one is the error, not a reason to try the
   * next candidate (which would hide a stale module). */
  return cuda_module_check(h, paths[used], &cuda_module_table, why, why_cap);
}

int cuda_module_api(const spladex_cuda_api **api, char *why, size_t why_cap) {
  pthread_mutex_lock(&cuda_module_lock);
  int rc = cuda_module_load_locked(why, why_cap);
  *api = cuda_module_table;
  pthread_mutex_unlock(&cuda_module_lock);
  return rc;
}
#else
int cuda_module_api(const spladex_cuda_api **api, char *why, size_t why_cap) {
  *api = NULL;
  snprintf(why, why_cap, "spladex was built without CUDA (no CUDA backend in this build)");
  return ERR_DEVICE;
}
#endif
