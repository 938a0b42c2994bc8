/* cuda_module: dlopen() of libspladex_cuda.so on first use (see cuda_module.h). */
/* dladdr() is a GNU extension; this file alone asks for it. */
#define _GNU_SOURCE

#include "cuda_module.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

#ifdef SPLADEX_HAVE_CUDA
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef SPLADEX_CUDA_MODULE
#define SPLADEX_CUDA_MODULE "libspladex_cuda.so"
#endif

static pthread_mutex_t cuda_module_lock = PTHREAD_MUTEX_INITIALIZER;
static void *cuda_module_handle; /* set once, under the lock; never closed */

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
  if (cuda_module_handle) return 0;
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
    if (dladdr((void *)&cuda_module_handle, &info) && info.dli_fname)
      cuda_module_next_to(info.dli_fname, paths, &n);
    snprintf(paths[n++], PATH_MAX, "%s", SPLADEX_CUDA_MODULE);
  }
  void *h = NULL;
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
    if (!h && !first_err[0]) {
      const char *d = dlerror();
      snprintf(first_err, sizeof first_err, "%s", d ? d : "unknown dlopen error");
    }
  }
  if (!h) {
    snprintf(why, why_cap, "the CUDA backend module %s could not be loaded: %s (tried: %s)",
             SPLADEX_CUDA_MODULE, first_err, tried);
    return ERR_DEVICE;
  }
  cuda_module_handle = h;
  return 0;
}

int cuda_module_load(char *why, size_t why_cap) {
  pthread_mutex_lock(&cuda_module_lock);
  int rc = cuda_module_load_locked(why, why_cap);
  pthread_mutex_unlock(&cuda_module_lock);
  return rc;
}

int cuda_module_function(const char *name, void (**fn)(void), char *why, size_t why_cap) {
  *fn = NULL;
  pthread_mutex_lock(&cuda_module_lock);
  int rc = cuda_module_load_locked(why, why_cap);
  if (rc == 0) {
    (void)dlerror();
    void *p = dlsym(cuda_module_handle, name);
    if (!p) {
      const char *d = dlerror();
      snprintf(why, why_cap, "the CUDA backend module %s lacks %s: %s", SPLADEX_CUDA_MODULE, name,
               d ? d : "null symbol");
      rc = ERR_DEVICE;
    } else {
      /* ISO C has no object-to-function pointer conversion; POSIX guarantees the representation. */
      memcpy(fn, &p, sizeof *fn);
    }
  }
  pthread_mutex_unlock(&cuda_module_lock);
  return rc;
}
#else
int cuda_module_load(char *why, size_t why_cap) {
  snprintf(why, why_cap, "spladex was built without CUDA (no CUDA backend in this build)");
  return ERR_DEVICE;
}

int cuda_module_function(const char *name, void (**fn)(void), char *why, size_t why_cap) {
  (void)name;
  *fn = NULL;
  return cuda_module_load(why, why_cap);
}
#endif
