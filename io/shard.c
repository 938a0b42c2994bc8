/* shard: the HDF5 shard writer and reader (layout in shard.h and DESIGN.md section 4).
 *
 * The writer appends to chunked, extendible 1-D datasets through fixed buffers (entries, indptr,
 * doc ids), so its memory does not depend on the shard size. The reader opens the structure,
 * checks it, and reads row ranges through a cached window of indptr + doc ids; data and indices
 * are read only for the rows asked for, and every range read is validated (indptr monotone and in
 * bounds, indices strictly ascending and below vocab_size) so a corrupted file gives ERR_FORMAT,
 * never an out-of-bounds access downstream.
 *
 * Compression is the writer's bottleneck (shuffle + deflate of /vectors/data and /indices: ~3/4
 * of its time), and the writer is the one thread every row of `spladex expand` goes through. So
 * the writer compresses full chunks of those two datasets on a few threads of its own: the
 * calling thread copies a chunk into a job, a pool thread shuffles it (by element size) and
 * deflates it with zlib's compress2 at SHARD_DEFLATE_LEVEL (exactly what HDF5's shuffle and
 * deflate filters do, so readers decode it through the pipeline recorded in the dataset), and the
 * calling thread writes the jobs in order with H5Dwrite_chunk after extending the dataset: HDF5
 * is not thread-safe and only the calling thread ever touches it. The last, partial chunk goes
 * the same way, zero-padded to the full chunk (HDF5 pads an edge chunk the same way; the extent
 * limits what readers see). While the calling thread would wait for a job, it compresses a
 * queued one itself. Jobs are a ring of 2 * (threads + 1): memory stays bounded.
 *
 * HDF5 prints its own error stack by default; every entry point here switches that off for the
 * calling thread and records one message instead, with the innermost HDF5 reason appended.
 * Legend: N rows (documents) in the shard, E stored entries (nnz), V vocabulary size.
 */
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"

#define SHARD_FORMAT "spladex-shard"
#define SHARD_FORMAT_VERSION 1

enum {
  SHARD_ENTRY_BUFFER = 65536,   /* entries buffered by the writer = data/indices chunk */
  SHARD_INDPTR_BUFFER = 16384,  /* indptr values buffered = indptr chunk */
  SHARD_ID_BUFFER = 4096,       /* doc ids buffered = doc_ids / vocab chunk */
  SHARD_ID_BYTES = 1 << 20,     /* flush the doc ids early once their text passes this */
  SHARD_READ_WINDOW = 16384,    /* rows of indptr + doc ids the reader caches */
  SHARD_READ_ENTRIES = 1 << 20, /* entries (8 bytes each) the reader caches, unless asked more */
  SHARD_DEFLATE_LEVEL = 4,
  SHARD_MAX_THREADS = 16        /* compression threads of one writer, at most */
};

/* ---- HDF5 helpers ---- */

/* Every entry point calls this first. H5dont_atexit() (effective only before the library's first
 * use) keeps HDF5 from closing still-open files at exit: after a write failed at close time (disk
 * full), HDF5 1.10 leaves the file half-closed and its exit handler crashed on it (SIGSEGV after the
 * error was printed); the writer already removed that .tmp, so there is nothing to flush. */
static void shard_quiet(void) {
  static int first = 1;
  if (first) {
    first = 0;
    H5dont_atexit();
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Keeps the innermost description, reduced to one line: a failed write's description spans
 * lines with buffer addresses; its "error message = '...'" part (strerror) is the reason. */
static herr_t shard_walk_innermost(unsigned n, const H5E_error2_t *e, void *data) {
  if (n != 0 || !e || !e->desc) return 0;
  char *out = data;
  const char *reason = strstr(e->desc, "error message = '");
  if (reason) {
    reason += strlen("error message = '");
    const char *end = strchr(reason, '\'');
    snprintf(out, 256, "%.*s", (int)(end ? end - reason : (ptrdiff_t)strlen(reason)), reason);
  } else {
    snprintf(out, 256, "%s", e->desc);
  }
  for (char *c = out; *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
  return 0;
}

/* Records "path: what (innermost HDF5 reason)" and clears HDF5's stack; returns code. */
static int shard_h5_error(int code, const char *path, const char *what) {
  char detail[256] = "";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, shard_walk_innermost, detail);
  H5Eclear2(H5E_DEFAULT);
  if (detail[0]) return err_set(code, "%s: %s (%s)", path, what, detail);
  return err_set(code, "%s: %s", path, what);
}

/* Closes *id (any kind) and invalidates it. Returns the close's status: closing a dataset or a
 * file writes what HDF5 still caches (chunks, metadata), so a writer must check it. */
static herr_t shard_close_id(hid_t *id) {
  herr_t status = 0;
  if (*id < 0) return 0;
  switch (H5Iget_type(*id)) {
    case H5I_FILE: status = H5Fclose(*id); break;
    case H5I_GROUP: status = H5Gclose(*id); break;
    case H5I_DATASET: status = H5Dclose(*id); break;
    case H5I_DATATYPE: status = H5Tclose(*id); break;
    case H5I_DATASPACE: status = H5Sclose(*id); break;
    case H5I_ATTR: status = H5Aclose(*id); break;
    case H5I_GENPROP_LST: status = H5Pclose(*id); break;
    default: break;
  }
  *id = H5I_INVALID_HID;
  return status;
}

/* Variable-length UTF-8 string type (the caller closes it). */
static hid_t shard_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return t;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return H5I_INVALID_HID;
  }
  return t;
}

/* IEEE 754 binary16, little-endian (what numpy calls float16; the caller closes it). */
static hid_t shard_half_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0) return t;
  if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
    H5Tclose(t);
    return H5I_INVALID_HID;
  }
  return t;
}

/* float -> binary16 bits, round to nearest even (overflow -> inf, NaN kept). */
static uint16_t shard_float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exponent = (x >> 23) & 0xffu;
  uint32_t mantissa = x & 0x7fffffu;
  if (exponent == 0xffu) return (uint16_t)(sign | 0x7c00u | (mantissa ? 0x200u : 0u));
  int e = (int)exponent - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mantissa |= 0x800000u;
    int shift = 14 - e;
    uint32_t half = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((uint32_t)e << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++; /* may carry into inf: right */
  return (uint16_t)(sign | half);
}

static float shard_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t x;
  if (exponent == 0) {
    if (mantissa == 0) {
      x = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do {
        e++;
        mantissa <<= 1;
      } while (!(mantissa & 0x400u));
      x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else if (exponent == 31) {
    x = sign | 0x7f800000u | (mantissa << 13);
  } else {
    x = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* Writes count elements of buf at [offset, offset + count) of a 1-D dataset, extending it. */
static herr_t shard_append_1d(hid_t dset, hid_t mem_type, int64_t offset, int64_t count,
                              const void *buf) {
  if (count <= 0) return 0;
  hsize_t new_size = (hsize_t)(offset + count), start = (hsize_t)offset, n = (hsize_t)count;
  hid_t file_space = H5I_INVALID_HID, mem_space = H5I_INVALID_HID;
  herr_t status = -1;
  if (H5Dset_extent(dset, &new_size) < 0) goto fail;
  if ((file_space = H5Dget_space(dset)) < 0) goto fail;
  if (H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &start, NULL, &n, NULL) < 0) goto fail;
  if ((mem_space = H5Screate_simple(1, &n, NULL)) < 0) goto fail;
  status = H5Dwrite(dset, mem_type, mem_space, file_space, H5P_DEFAULT, buf);
fail:
  shard_close_id(&mem_space);
  shard_close_id(&file_space);
  return status;
}

/* Reads [offset, offset + count) of a 1-D dataset into buf as mem_type. */
static herr_t shard_read_1d(hid_t dset, hid_t mem_type, int64_t offset, int64_t count, void *buf) {
  if (count <= 0) return 0;
  hsize_t start = (hsize_t)offset, n = (hsize_t)count;
  hid_t file_space = H5I_INVALID_HID, mem_space = H5I_INVALID_HID;
  herr_t status = -1;
  if ((file_space = H5Dget_space(dset)) < 0) goto fail;
  if (H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &start, NULL, &n, NULL) < 0) goto fail;
  if ((mem_space = H5Screate_simple(1, &n, NULL)) < 0) goto fail;
  status = H5Dread(dset, mem_type, mem_space, file_space, H5P_DEFAULT, buf);
fail:
  shard_close_id(&mem_space);
  shard_close_id(&file_space);
  return status;
}

/* An empty, extendible, chunked 1-D dataset; compressed with shuffle + deflate. */
static hid_t shard_create_1d(hid_t loc, const char *name, hid_t type, hsize_t chunk) {
  hsize_t dims = 0, max_dims = H5S_UNLIMITED;
  hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
  if ((space = H5Screate_simple(1, &dims, &max_dims)) < 0) goto fail;
  if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) goto fail;
  if (H5Pset_chunk(dcpl, 1, &chunk) < 0) goto fail;
  if (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, SHARD_DEFLATE_LEVEL) < 0) goto fail;
  dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
fail:
  shard_close_id(&dcpl);
  shard_close_id(&space);
  return dset;
}

/* Attribute writers: scalar (count 0) or 1-D array of count numbers; vlen UTF-8 scalar string
 * (what anndata writes for encoding-type / encoding-version). */
static herr_t shard_attr_numbers(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                                 const void *value, hsize_t count) {
  hid_t space = count ? H5Screate_simple(1, &count, NULL) : H5Screate(H5S_SCALAR);
  hid_t attr = H5I_INVALID_HID;
  herr_t status = -1;
  if (space < 0) goto fail;
  if ((attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
  status = H5Awrite(attr, mem_type, value);
fail:
  shard_close_id(&attr);
  shard_close_id(&space);
  return status;
}

static herr_t shard_attr_string(hid_t obj, const char *name, const char *value) {
  hid_t type = shard_string_type(), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
  herr_t status = -1;
  if (type < 0 || space < 0) goto fail;
  if ((attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
  status = H5Awrite(attr, type, &value);
fail:
  shard_close_id(&attr);
  shard_close_id(&space);
  shard_close_id(&type);
  return status;
}

static herr_t shard_attr_i32(hid_t obj, const char *name, int32_t value) {
  return shard_attr_numbers(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &value, 0);
}

static herr_t shard_attr_i64(hid_t obj, const char *name, int64_t value) {
  return shard_attr_numbers(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, 0);
}

/* ---- writer ---- */

enum { SHARD_DATA = 0, SHARD_INDICES = 1 }; /* the datasets written by chunk jobs */

/* One full chunk of /vectors/data or /vectors/indices on its way to the file. The calling thread
 * fills raw and queues it; a pool thread (or the calling thread, see shard_write_oldest) shuffles
 * raw into shuffled and deflates that into out; the calling thread writes out. The fields are
 * handed over under the writer's lock (jobs_queued, done). */
typedef struct {
  int dataset;              /* SHARD_DATA or SHARD_INDICES */
  int64_t offset;           /* first entry of the chunk (a multiple of SHARD_ENTRY_BUFFER) */
  int64_t entries;          /* entries in the dataset; the rest of the chunk is zero padding */
  size_t element_size;      /* bytes per entry: 4, or 2 for float16 data */
  unsigned char *raw;       /* (SHARD_ENTRY_BUFFER * 4) the entries, little-endian */
  unsigned char *shuffled;  /* (SHARD_ENTRY_BUFFER * 4) byte k of every entry, then byte k + 1 */
  unsigned char *out;       /* (out_cap) the zlib stream */
  size_t out_cap, out_bytes;
  int zlib_status;          /* compress2's result */
  int done;                 /* compressed, out is ready (under the lock) */
} shard_chunk_job;

struct shard_writer {
  char *path, *tmp_path;
  hid_t file, vectors, data, indices, indptr, doc_ids;
  hid_t string_type, half_type;
  int vocab_size, float16;
  int64_t input_start, input_end; /* written at finish (set_input_range may change them) */
  int failed;                 /* an append failed: finish refuses */
  int64_t n_docs, nnz;        /* rows and entries appended so far (buffered included) */
  int64_t entries_written, indptr_written, ids_written; /* in the file (entries: or queued) */
  int entries_buffered, indptr_buffered, ids_buffered;
  int32_t *indices_buffer;    /* (SHARD_ENTRY_BUFFER) */
  float *values_buffer;       /* (SHARD_ENTRY_BUFFER) */
  uint16_t *half_buffer;      /* (SHARD_ENTRY_BUFFER), float16 only */
  /* parallel compression (threads > 0): see shard_submit_chunk */
  int threads;                /* pool threads wanted; 0 = HDF5's filters on the calling thread */
  int threads_started;        /* pool threads running (joined by shard_pool_stop) */
  int pool_ready;             /* lock, conditions and jobs set up */
  pthread_t pool[SHARD_MAX_THREADS];
  pthread_mutex_t lock;       /* guards the sequence numbers, job states and stopping */
  pthread_cond_t work_ready;  /* a job was queued, or stopping */
  pthread_cond_t work_done;   /* a job was compressed */
  int stopping;
  shard_chunk_job *jobs;      /* (job_cap) ring: job number s lives in jobs[s % job_cap] */
  int job_cap;
  int64_t jobs_queued, jobs_started, jobs_written; /* written <= started <= queued */
  int64_t extent[2];          /* current length of /vectors/data, /vectors/indices in the file */
  int64_t *indptr_buffer;     /* (SHARD_INDPTR_BUFFER) */
  char *id_bytes;             /* the buffered ids, NUL-separated */
  size_t id_bytes_used, id_bytes_cap;
  size_t *id_offsets;         /* (SHARD_ID_BUFFER) */
  const char **id_pointers;   /* (SHARD_ID_BUFFER) */
};

/* ---- parallel compression of the data / indices chunks ---- */

/* What HDF5's shuffle filter and then its deflate filter do to a full chunk (H5Zshuffle.c,
 * H5Zdeflate.c): byte k of every element together, then one zlib stream of the whole chunk. */
static void shard_compress_job(shard_chunk_job *job) {
  const size_t n = SHARD_ENTRY_BUFFER, size = job->element_size;
  for (size_t k = 0; k < size; k++) {
    unsigned char *dst = job->shuffled + k * n;
    const unsigned char *src = job->raw + k;
    for (size_t i = 0; i < n; i++) dst[i] = src[i * size];
  }
  uLongf out_bytes = (uLongf)job->out_cap;
  job->zlib_status =
      compress2(job->out, &out_bytes, job->shuffled, (uLong)(n * size), SHARD_DEFLATE_LEVEL);
  job->out_bytes = (size_t)out_bytes;
}

/* Takes the oldest queued job that nobody compresses yet (lock held), or NULL. */
static shard_chunk_job *shard_take_job(shard_writer *w) {
  if (w->jobs_started == w->jobs_queued) return NULL;
  return &w->jobs[w->jobs_started++ % w->job_cap];
}

/* Compresses job (lock not held) and marks it done (takes the lock). */
static void shard_run_job(shard_writer *w, shard_chunk_job *job) {
  shard_compress_job(job);
  pthread_mutex_lock(&w->lock);
  job->done = 1;
  pthread_cond_signal(&w->work_done); /* only the calling thread waits on it */
  pthread_mutex_unlock(&w->lock);
}

/* A pool thread: compresses queued jobs in order until the writer stops. No HDF5 call here. */
static void *shard_pool_main(void *arg) {
  shard_writer *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    shard_chunk_job *job = NULL;
    while (!w->stopping && !(job = shard_take_job(w))) pthread_cond_wait(&w->work_ready, &w->lock);
    if (!job) break; /* stopping */
    pthread_mutex_unlock(&w->lock);
    shard_run_job(w, job);
    pthread_mutex_lock(&w->lock);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

static void shard_pool_stop(shard_writer *w);

/* Sets up the jobs and starts the threads, at the first chunk (a shard smaller than one chunk
 * starts none). A thread that cannot start is not an error: the calling thread compresses what
 * no pool thread takes (shard_write_oldest). Returns 0 or ERR_NOMEM. */
static int shard_pool_start(shard_writer *w) {
  const size_t chunk_bytes = (size_t)SHARD_ENTRY_BUFFER * 4;
  int rc = 0;
  w->job_cap = 2 * (w->threads + 1);
  if (!(w->jobs = calloc((size_t)w->job_cap, sizeof *w->jobs))) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", w->tmp_path);
    goto fail;
  }
  for (int j = 0; j < w->job_cap; j++) {
    shard_chunk_job *job = &w->jobs[j];
    job->out_cap = (size_t)compressBound((uLong)chunk_bytes);
    job->raw = malloc(chunk_bytes);
    job->shuffled = malloc(chunk_bytes);
    job->out = malloc(job->out_cap);
    if (!job->raw || !job->shuffled || !job->out) {
      rc = err_set(ERR_NOMEM, "%s: out of memory for the compression buffers", w->tmp_path);
      goto fail;
    }
  }
  if (pthread_mutex_init(&w->lock, NULL)) {
    rc = err_set(ERR_NOMEM, "%s: cannot make a mutex", w->tmp_path);
    goto fail;
  }
  if (pthread_cond_init(&w->work_ready, NULL)) {
    pthread_mutex_destroy(&w->lock);
    rc = err_set(ERR_NOMEM, "%s: cannot make a condition variable", w->tmp_path);
    goto fail;
  }
  if (pthread_cond_init(&w->work_done, NULL)) {
    pthread_cond_destroy(&w->work_ready);
    pthread_mutex_destroy(&w->lock);
    rc = err_set(ERR_NOMEM, "%s: cannot make a condition variable", w->tmp_path);
    goto fail;
  }
  w->pool_ready = 1;
  while (w->threads_started < w->threads &&
         pthread_create(&w->pool[w->threads_started], NULL, shard_pool_main, w) == 0)
    w->threads_started++;
  return 0;
fail:
  shard_pool_stop(w); /* frees the jobs */
  return rc;
}

/* Stops and joins the pool threads (a job being compressed is finished first, queued ones are
 * dropped) and frees the jobs. Safe to call when nothing was started. */
static void shard_pool_stop(shard_writer *w) {
  if (w->pool_ready) {
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->work_ready);
    pthread_mutex_unlock(&w->lock);
    for (int t = 0; t < w->threads_started; t++) pthread_join(w->pool[t], NULL);
    w->threads_started = 0;
    pthread_cond_destroy(&w->work_done);
    pthread_cond_destroy(&w->work_ready);
    pthread_mutex_destroy(&w->lock);
    w->pool_ready = 0;
  }
  if (w->jobs) {
    for (int j = 0; j < w->job_cap; j++) {
      free(w->jobs[j].raw);
      free(w->jobs[j].shuffled);
      free(w->jobs[j].out);
    }
    free(w->jobs);
    w->jobs = NULL;
  }
}

/* Waits until the oldest unwritten job is compressed, compressing queued jobs on this thread
 * meanwhile (rather than leave its core idle), then writes it: extends the dataset to cover the
 * chunk's entries and writes the stream with H5Dwrite_chunk (filter mask 0: shuffle and deflate
 * both applied). With wait == 0, writes it only if it is ready. Returns 1 if a job was written,
 * 0 if not (not ready, or none), or ERR_IO / ERR_NOMEM naming the file. */
static int shard_write_oldest(shard_writer *w, int wait) {
  if (w->jobs_written == w->jobs_queued) return 0;
  shard_chunk_job *job = &w->jobs[w->jobs_written % w->job_cap];
  pthread_mutex_lock(&w->lock);
  while (!job->done) {
    shard_chunk_job *mine = wait ? shard_take_job(w) : NULL;
    if (mine) {
      pthread_mutex_unlock(&w->lock);
      shard_run_job(w, mine);
      pthread_mutex_lock(&w->lock);
    } else if (wait) {
      pthread_cond_wait(&w->work_done, &w->lock);
    } else {
      break;
    }
  }
  int done = job->done;
  pthread_mutex_unlock(&w->lock);
  if (!done) return 0;
  /* the job is this thread's until it is queued again: no lock needed below */
  const char *name = job->dataset == SHARD_DATA ? "/vectors/data" : "/vectors/indices";
  const char *what = job->dataset == SHARD_DATA ? "cannot write /vectors/data"
                                                : "cannot write /vectors/indices";
  hid_t dset = job->dataset == SHARD_DATA ? w->data : w->indices;
  if (job->zlib_status != Z_OK) {
    if (job->zlib_status == Z_MEM_ERROR)
      return err_set(ERR_NOMEM, "%s: out of memory compressing %s", w->tmp_path, name);
    return err_set(ERR_IO, "%s: cannot compress %s (zlib error %d)", w->tmp_path, name,
                   job->zlib_status);
  }
  hsize_t end = (hsize_t)(job->offset + job->entries), offset = (hsize_t)job->offset;
  if ((int64_t)end > w->extent[job->dataset]) {
    if (H5Dset_extent(dset, &end) < 0) return shard_h5_error(ERR_IO, w->tmp_path, what);
    w->extent[job->dataset] = (int64_t)end;
  }
  if (H5Dwrite_chunk(dset, H5P_DEFAULT, 0, &offset, job->out_bytes, job->out) < 0)
    return shard_h5_error(ERR_IO, w->tmp_path, what);
  job->done = 0;
  w->jobs_written++;
  return 1;
}

/* Queues the chunk of dataset at offset (entries values of element_size bytes, zero-padded to
 * the full chunk) for compression, first writing the oldest job while the ring is full, and
 * after, whatever is ready in order. Returns 0 or ERR_IO / ERR_NOMEM naming the file. */
static int shard_submit_chunk(shard_writer *w, int dataset, int64_t offset, const void *values,
                              int entries, size_t element_size) {
  int rc = 0;
  SPX_ASSERT(offset % SHARD_ENTRY_BUFFER == 0 && entries > 0 && entries <= SHARD_ENTRY_BUFFER);
  if (!w->pool_ready && (rc = shard_pool_start(w)) < 0) return rc;
  while (w->jobs_queued - w->jobs_written == w->job_cap)
    if ((rc = shard_write_oldest(w, 1)) < 0) return rc;
  shard_chunk_job *job = &w->jobs[w->jobs_queued % w->job_cap];
  job->dataset = dataset;
  job->offset = offset;
  job->entries = entries;
  job->element_size = element_size;
  memcpy(job->raw, values, (size_t)entries * element_size);
  memset(job->raw + (size_t)entries * element_size, 0,
         (size_t)(SHARD_ENTRY_BUFFER - entries) * element_size);
  job->done = 0;
  pthread_mutex_lock(&w->lock);
  w->jobs_queued++;
  pthread_cond_signal(&w->work_ready);
  pthread_mutex_unlock(&w->lock);
  while ((rc = shard_write_oldest(w, 0)) > 0) {
  }
  return rc < 0 ? rc : 0;
}

/* Writes every queued job, in order. Returns 0 or ERR_IO / ERR_NOMEM naming the file. */
static int shard_write_all(shard_writer *w) {
  int rc = 0;
  while ((rc = shard_write_oldest(w, 1)) > 0) {
  }
  return rc;
}

static void shard_writer_free(shard_writer *w) {
  if (!w) return;
  shard_pool_stop(w); /* first: the pool threads use the jobs and the lock */
  shard_close_id(&w->doc_ids);
  shard_close_id(&w->indptr);
  shard_close_id(&w->indices);
  shard_close_id(&w->data);
  shard_close_id(&w->vectors);
  shard_close_id(&w->file);
  shard_close_id(&w->string_type);
  shard_close_id(&w->half_type);
  free(w->path);
  free(w->tmp_path);
  free(w->indices_buffer);
  free(w->values_buffer);
  free(w->half_buffer);
  free(w->indptr_buffer);
  free(w->id_bytes);
  free(w->id_offsets);
  free(w->id_pointers);
  free(w);
}

static int shard_flush_entries(shard_writer *w) {
  int n = w->entries_buffered;
  if (!n) return 0;
  const void *values = w->values_buffer;
  hid_t value_type = H5T_NATIVE_FLOAT;
  if (w->float16) {
    for (int i = 0; i < n; i++) w->half_buffer[i] = shard_float_to_half(w->values_buffer[i]);
    values = w->half_buffer;
    value_type = w->half_type;
  }
  if (w->threads > 0) {
    int rc = shard_submit_chunk(w, SHARD_DATA, w->entries_written, values, n, w->float16 ? 2 : 4);
    if (rc < 0 || (rc = shard_submit_chunk(w, SHARD_INDICES, w->entries_written,
                                           w->indices_buffer, n, 4)) < 0)
      return rc;
    w->entries_written += n;
    w->entries_buffered = 0;
    return 0;
  }
  if (shard_append_1d(w->data, value_type, w->entries_written, n, values) < 0)
    return shard_h5_error(ERR_IO, w->tmp_path, "cannot write /vectors/data");
  if (shard_append_1d(w->indices, H5T_NATIVE_INT32, w->entries_written, n, w->indices_buffer) < 0)
    return shard_h5_error(ERR_IO, w->tmp_path, "cannot write /vectors/indices");
  w->entries_written += n;
  w->entries_buffered = 0;
  return 0;
}

static int shard_flush_indptr(shard_writer *w) {
  int n = w->indptr_buffered;
  if (!n) return 0;
  if (shard_append_1d(w->indptr, H5T_NATIVE_INT64, w->indptr_written, n, w->indptr_buffer) < 0)
    return shard_h5_error(ERR_IO, w->tmp_path, "cannot write /vectors/indptr");
  w->indptr_written += n;
  w->indptr_buffered = 0;
  return 0;
}

static int shard_flush_ids(shard_writer *w) {
  int n = w->ids_buffered;
  if (!n) return 0;
  for (int i = 0; i < n; i++) w->id_pointers[i] = w->id_bytes + w->id_offsets[i];
  if (shard_append_1d(w->doc_ids, w->string_type, w->ids_written, n, w->id_pointers) < 0)
    return shard_h5_error(ERR_IO, w->tmp_path, "cannot write /doc_ids");
  w->ids_written += n;
  w->ids_buffered = 0;
  w->id_bytes_used = 0;
  return 0;
}

static int shard_push_indptr(shard_writer *w, int64_t value) {
  if (w->indptr_buffered == SHARD_INDPTR_BUFFER) {
    int rc = shard_flush_indptr(w);
    if (rc < 0) return rc;
  }
  w->indptr_buffer[w->indptr_buffered++] = value;
  return 0;
}

/* The number of compression threads for meta (shard.h, shard_meta.compress_threads) into
 * *threads. 0 on a big-endian host: the jobs hold the entries as they are in memory, and the
 * file's types are little-endian. Returns 0, or ERR_ARG for a bad SPLADEX_SHARD_THREADS. */
static int shard_compress_threads(const char *path, const shard_meta *meta, int *threads) {
  const uint16_t one = 1;
  unsigned char first_byte;
  memcpy(&first_byte, &one, 1);
  *threads = 0;
  if (meta->compress_threads < 0 || first_byte != 1) return 0;
  if (meta->compress_threads > 0) {
    *threads = meta->compress_threads < SHARD_MAX_THREADS ? meta->compress_threads
                                                          : SHARD_MAX_THREADS;
    return 0;
  }
  const char *env = getenv("SPLADEX_SHARD_THREADS");
  if (env && *env) {
    char *end = NULL;
    errno = 0;
    long n = strtol(env, &end, 10);
    if (errno || *end || n < 0 || n > SHARD_MAX_THREADS)
      return err_set(ERR_ARG, "%s: SPLADEX_SHARD_THREADS is '%s', expected 0 to %d", path, env,
                     SHARD_MAX_THREADS);
    *threads = (int)n;
    return 0;
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  *threads = cores - 1 > 4 ? 4 : cores - 1 < 1 ? 1 : (int)(cores - 1);
  return 0;
}

int shard_writer_open(const char *path, const shard_meta *meta, shard_writer **out) {
  shard_quiet();
  *out = NULL;
  int rc = ERR_IO;
  shard_writer *w = calloc(1, sizeof *w);
  hid_t fapl = H5I_INVALID_HID, vocab = H5I_INVALID_HID;
  if (!w) return err_set(ERR_NOMEM, "%s: out of memory", path);
  w->file = w->vectors = w->data = w->indices = w->indptr = w->doc_ids = H5I_INVALID_HID;
  w->string_type = w->half_type = H5I_INVALID_HID;
  if (meta->vocab_size <= 0 || !meta->vocab) {
    rc = err_set(ERR_ARG, "%s: a shard needs a vocabulary (vocab_size %d)", path, meta->vocab_size);
    goto fail;
  }
  w->vocab_size = meta->vocab_size;
  w->input_start = meta->input_start;
  w->input_end = meta->input_end;
  w->float16 = meta->float16 != 0;
  if ((rc = shard_compress_threads(path, meta, &w->threads)) < 0) goto fail;
  size_t path_len = strlen(path);
  w->path = malloc(path_len + 1);
  w->tmp_path = malloc(path_len + 5);
  w->indices_buffer = malloc(SHARD_ENTRY_BUFFER * sizeof *w->indices_buffer);
  w->values_buffer = malloc(SHARD_ENTRY_BUFFER * sizeof *w->values_buffer);
  w->half_buffer = w->float16 ? malloc(SHARD_ENTRY_BUFFER * sizeof *w->half_buffer) : NULL;
  w->indptr_buffer = malloc(SHARD_INDPTR_BUFFER * sizeof *w->indptr_buffer);
  w->id_bytes_cap = 64 * 1024;
  w->id_bytes = malloc(w->id_bytes_cap);
  w->id_offsets = malloc(SHARD_ID_BUFFER * sizeof *w->id_offsets);
  w->id_pointers = malloc(SHARD_ID_BUFFER * sizeof *w->id_pointers);
  if (!w->path || !w->tmp_path || !w->indices_buffer || !w->values_buffer ||
      (w->float16 && !w->half_buffer) || !w->indptr_buffer || !w->id_bytes || !w->id_offsets ||
      !w->id_pointers) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  memcpy(w->path, path, path_len + 1);
  memcpy(w->tmp_path, path, path_len);
  memcpy(w->tmp_path + path_len, ".tmp", 5);

  if (unlink(w->tmp_path) < 0 && errno != ENOENT) {
    rc = err_set(ERR_IO, "%s: cannot remove the leftover: %s", w->tmp_path, strerror(errno));
    goto fail;
  }
  /* STRONG: closing the file closes anything still open in it (the abort path). */
  if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot set up HDF5 file access");
    goto fail;
  }
  if ((w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot create the shard");
    goto fail;
  }
  if ((w->string_type = shard_string_type()) < 0 ||
      (w->float16 && (w->half_type = shard_half_type()) < 0)) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot make the HDF5 types");
    goto fail;
  }
  int32_t format_version = SHARD_FORMAT_VERSION;
  float threshold = meta->threshold;
  if (shard_attr_string(w->file, "format", SHARD_FORMAT) < 0 ||
      shard_attr_i32(w->file, "format_version", format_version) < 0 ||
      shard_attr_string(w->file, "model", meta->model ? meta->model : "") < 0 ||
      shard_attr_i32(w->file, "max_length", meta->max_length) < 0 ||
      shard_attr_numbers(w->file, "threshold", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &threshold, 0) < 0 ||
      shard_attr_i32(w->file, "top_k", meta->top_k) < 0 ||
      shard_attr_i64(w->file, "first_doc", meta->first_doc) < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot write the shard attributes");
    goto fail;
  }
  if ((w->vectors = H5Gcreate2(w->file, "vectors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
      shard_attr_string(w->vectors, "encoding-type", "csr_matrix") < 0 ||
      shard_attr_string(w->vectors, "encoding-version", "0.1.0") < 0 ||
      (w->data = shard_create_1d(w->vectors, "data",
                                 w->float16 ? w->half_type : H5T_IEEE_F32LE,
                                 SHARD_ENTRY_BUFFER)) < 0 ||
      (w->indices = shard_create_1d(w->vectors, "indices", H5T_STD_I32LE, SHARD_ENTRY_BUFFER)) < 0 ||
      (w->indptr = shard_create_1d(w->vectors, "indptr", H5T_STD_I64LE, SHARD_INDPTR_BUFFER)) < 0 ||
      (w->doc_ids = shard_create_1d(w->file, "doc_ids", w->string_type, SHARD_ID_BUFFER)) < 0 ||
      shard_attr_string(w->doc_ids, "encoding-type", "string-array") < 0 ||
      shard_attr_string(w->doc_ids, "encoding-version", "0.2.0") < 0 ||
      (vocab = shard_create_1d(w->file, "vocab", w->string_type, SHARD_ID_BUFFER)) < 0 ||
      shard_attr_string(vocab, "encoding-type", "string-array") < 0 ||
      shard_attr_string(vocab, "encoding-version", "0.2.0") < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot create the shard datasets");
    goto fail;
  }
  for (int v = 0; v < meta->vocab_size; v++) SPX_ASSERT(meta->vocab[v] != NULL);
  if (shard_append_1d(vocab, w->string_type, 0, meta->vocab_size, meta->vocab) < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot write /vocab");
    goto fail;
  }
  shard_close_id(&vocab);
  shard_close_id(&fapl);
  w->indptr_buffer[w->indptr_buffered++] = 0;
  *out = w;
  return 0;
fail:
  shard_close_id(&vocab);
  shard_close_id(&fapl);
  if (w->tmp_path && w->file >= 0) {
    shard_writer_abort(w); /* the .tmp exists: remove it */
    return rc;
  }
  shard_writer_free(w);
  return rc;
}

int shard_writer_append(shard_writer *w, const char *doc_id, const int32_t *indices,
                        const float *values, int nnz) {
  shard_quiet();
  int rc = 0;
  SPX_ASSERT(doc_id != NULL && nnz >= 0);
  if (w->failed) return err_set(ERR_IO, "%s: the shard writer failed earlier", w->tmp_path);
  for (int i = 0; i < nnz; i++) {
    if (indices[i] < 0 || indices[i] >= w->vocab_size || (i > 0 && indices[i] <= indices[i - 1])) {
      rc = err_set(ERR_ARG, "%s: document '%s': term index %d at position %d is %s", w->tmp_path,
                   doc_id, (int)indices[i], i,
                   indices[i] < 0 || indices[i] >= w->vocab_size ? "outside the vocabulary"
                                                                 : "not ascending");
      goto fail;
    }
  }
  for (int done = 0; done < nnz;) {
    if (w->entries_buffered == SHARD_ENTRY_BUFFER && (rc = shard_flush_entries(w)) < 0) goto fail;
    int room = SHARD_ENTRY_BUFFER - w->entries_buffered;
    int take = nnz - done < room ? nnz - done : room;
    memcpy(w->indices_buffer + w->entries_buffered, indices + done, (size_t)take * sizeof *indices);
    memcpy(w->values_buffer + w->entries_buffered, values + done, (size_t)take * sizeof *values);
    w->entries_buffered += take;
    done += take;
  }
  w->nnz += nnz;
  if ((rc = shard_push_indptr(w, w->nnz)) < 0) goto fail;

  size_t id_len = strlen(doc_id) + 1;
  if (w->ids_buffered == SHARD_ID_BUFFER ||
      (w->ids_buffered && w->id_bytes_used + id_len > w->id_bytes_cap)) {
    if ((rc = shard_flush_ids(w)) < 0) goto fail;
  }
  if (id_len > w->id_bytes_cap) { /* one id larger than the arena: grow it once */
    char *grown = realloc(w->id_bytes, id_len);
    if (!grown) {
      rc = err_set(ERR_NOMEM, "%s: out of memory", w->tmp_path);
      goto fail;
    }
    w->id_bytes = grown;
    w->id_bytes_cap = id_len;
  }
  memcpy(w->id_bytes + w->id_bytes_used, doc_id, id_len);
  w->id_offsets[w->ids_buffered++] = w->id_bytes_used;
  w->id_bytes_used += id_len;
  if (w->id_bytes_used >= SHARD_ID_BYTES && (rc = shard_flush_ids(w)) < 0) goto fail;
  w->n_docs++;
  return 0;
fail:
  /* a bad row was rejected before anything was buffered: the shard stays usable */
  if (rc != ERR_ARG) w->failed = 1;
  return rc;
}

int shard_writer_set_input_range(shard_writer *w, int64_t input_start, int64_t input_end) {
  w->input_start = input_start;
  w->input_end = input_end;
  return 0;
}

static int shard_fsync_path(const char *path, int directory) {
  int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return -1;
  int status = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  return status;
}

/* Directory part of path ("." when it has none) into buf. */
static void shard_directory_of(const char *path, char *buf, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(buf, cap, ".");
  } else if (slash == path) {
    snprintf(buf, cap, "/");
  } else {
    snprintf(buf, cap, "%.*s", (int)(slash - path), path);
  }
}

int shard_writer_finish(shard_writer *w) {
  shard_quiet();
  int rc = 0;
  char directory[4096];
  if (w->failed) {
    rc = err_set(ERR_IO, "%s: the shard writer failed earlier; shard not written", w->tmp_path);
    goto fail;
  }
  if ((rc = shard_flush_entries(w)) < 0 || (rc = shard_flush_indptr(w)) < 0 ||
      (rc = shard_flush_ids(w)) < 0 || (rc = shard_write_all(w)) < 0)
    goto fail;
  int64_t shape[2] = {w->n_docs, w->vocab_size};
  if (shard_attr_i64(w->file, "n_docs", w->n_docs) < 0 ||
      shard_attr_i64(w->file, "input_start", w->input_start) < 0 ||
      shard_attr_i64(w->file, "input_end", w->input_end) < 0 ||
      shard_attr_numbers(w->vectors, "shape", H5T_STD_I64LE, H5T_NATIVE_INT64, shape, 2) < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot write the shard attributes");
    goto fail;
  }
  /* Flush first and check every close: the chunk cache is written when a dataset is closed, and
   * a dataset close that fails (disk full) does not make the file close fail -- unchecked, the
   * shard would be renamed complete with chunks that were never written. */
  if (H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot write the shard");
    goto fail;
  }
  herr_t closed = 0;
  closed |= shard_close_id(&w->doc_ids) < 0;
  closed |= shard_close_id(&w->indptr) < 0;
  closed |= shard_close_id(&w->indices) < 0;
  closed |= shard_close_id(&w->data) < 0;
  closed |= shard_close_id(&w->vectors) < 0;
  if (closed) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot write the shard's datasets");
    goto fail;
  }
  if (shard_close_id(&w->file) < 0) {
    rc = shard_h5_error(ERR_IO, w->tmp_path, "cannot close the shard");
    goto fail;
  }
  if (shard_fsync_path(w->tmp_path, 0) < 0) {
    rc = err_set(ERR_IO, "%s: fsync failed: %s", w->tmp_path, strerror(errno));
    goto fail;
  }
  if (rename(w->tmp_path, w->path) < 0) {
    rc = err_set(ERR_IO, "%s: cannot rename to %s: %s", w->tmp_path, w->path, strerror(errno));
    goto fail;
  }
  shard_directory_of(w->path, directory, sizeof directory);
  if (shard_fsync_path(directory, 1) < 0) {
    /* the shard is complete under its final name; only the rename's durability is in doubt */
    rc = err_set(ERR_IO, "%s: fsync of the directory failed: %s", directory, strerror(errno));
    shard_writer_free(w);
    return rc;
  }
  shard_writer_free(w);
  return 0;
fail:
  /* Datasets before the file (shard_writer_free's order): closing the file first and a dataset
   * whose flush then fails crashed inside HDF5 1.10 (H5D_close on a half-closed file). */
  unlink(w->tmp_path);
  shard_writer_free(w);
  H5Eclear2(H5E_DEFAULT);
  return rc;
}

void shard_writer_abort(shard_writer *w) {
  if (!w) return;
  shard_quiet();
  shard_close_id(&w->doc_ids);
  shard_close_id(&w->indptr);
  shard_close_id(&w->indices);
  shard_close_id(&w->data);
  shard_close_id(&w->vectors);
  shard_close_id(&w->file);
  H5Eclear2(H5E_DEFAULT);
  unlink(w->tmp_path);
  shard_writer_free(w);
}

/* ---- structure checks shared by the reader and shard_check ---- */

typedef struct {
  hid_t file, vectors, data, indices, indptr, doc_ids, vocab;
} shard_handles;

static void shard_handles_close(shard_handles *h) {
  shard_close_id(&h->vocab);
  shard_close_id(&h->doc_ids);
  shard_close_id(&h->indptr);
  shard_close_id(&h->indices);
  shard_close_id(&h->data);
  shard_close_id(&h->vectors);
  shard_close_id(&h->file);
}

/* Opens attribute name of obj, checks it holds count values (0: scalar or one value) of class.
 * Returns the attribute id (caller closes) or a negative ERR_FORMAT with a message. */
static hid_t shard_open_attr(hid_t obj, const char *obj_name, const char *name, H5T_class_t cls,
                             hssize_t count, const char *path) {
  hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
  htri_t exists = H5Aexists(obj, name);
  if (exists <= 0) {
    H5Eclear2(H5E_DEFAULT);
    err_set(ERR_FORMAT, "%s: missing attribute '%s' on %s", path, name, obj_name);
    return ERR_FORMAT;
  }
  if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (type = H5Aget_type(attr)) < 0 ||
      (space = H5Aget_space(attr)) < 0) {
    shard_close_id(&attr);
    shard_close_id(&type);
    shard_h5_error(ERR_FORMAT, path, "cannot open an attribute");
    return ERR_FORMAT;
  }
  H5T_class_t actual = H5Tget_class(type);
  hssize_t points = H5Sget_simple_extent_npoints(space);
  int class_ok = actual == cls || (cls == H5T_FLOAT && actual == H5T_INTEGER);
  shard_close_id(&type);
  shard_close_id(&space);
  if (!class_ok || points != (count ? count : 1)) {
    shard_close_id(&attr);
    err_set(ERR_FORMAT, "%s: attribute '%s' on %s has the wrong type or size", path, name,
            obj_name);
    return ERR_FORMAT;
  }
  return attr;
}

static int shard_read_attr_numbers(hid_t obj, const char *obj_name, const char *name,
                                   hid_t mem_type, void *out, hssize_t count, const char *path) {
  H5T_class_t cls = H5Tget_class(mem_type);
  hid_t attr = shard_open_attr(obj, obj_name, name, cls, count, path);
  if (attr < 0) return (int)attr;
  herr_t status = H5Aread(attr, mem_type, out);
  H5Aclose(attr);
  if (status < 0) return shard_h5_error(ERR_FORMAT, path, "cannot read a numeric attribute");
  return 0;
}

/* Reads a scalar string attribute (variable or fixed length) into buf (truncated to cap - 1). */
static int shard_read_attr_string(hid_t obj, const char *obj_name, const char *name, char *buf,
                                  size_t cap, const char *path) {
  hid_t attr = shard_open_attr(obj, obj_name, name, H5T_STRING, 0, path);
  hid_t type = H5I_INVALID_HID;
  int rc = 0;
  if (attr < 0) return (int)attr;
  if ((type = H5Aget_type(attr)) < 0) goto h5fail;
  htri_t variable = H5Tis_variable_str(type);
  if (variable < 0) goto h5fail;
  if (variable) {
    char *value = NULL;
    if (H5Aread(attr, type, &value) < 0) goto h5fail;
    snprintf(buf, cap, "%s", value ? value : "");
    if (value) H5free_memory(value);
  } else {
    size_t size = H5Tget_size(type);
    char *value = calloc(1, size + 1);
    if (!value) {
      rc = err_set(ERR_NOMEM, "%s: out of memory", path);
      goto fail;
    }
    if (H5Aread(attr, type, value) < 0) {
      free(value);
      goto h5fail;
    }
    snprintf(buf, cap, "%s", value);
    free(value);
  }
  goto fail;
h5fail:
  rc = shard_h5_error(ERR_FORMAT, path, "cannot read a string attribute");
fail:
  shard_close_id(&type);
  shard_close_id(&attr);
  return rc;
}

/* Opens a 1-D dataset and checks its class and length; *length gets its length. */
static int shard_open_dataset(hid_t loc, const char *name, H5T_class_t cls, int variable_string,
                              const char *path, hid_t *out, int64_t *length) {
  hid_t dset = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
  int rc = 0;
  htri_t exists = H5Lexists(loc, name, H5P_DEFAULT);
  if (exists <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return err_set(ERR_FORMAT, "%s: missing dataset '%s'", path, name);
  }
  if ((dset = H5Dopen2(loc, name, H5P_DEFAULT)) < 0 || (type = H5Dget_type(dset)) < 0 ||
      (space = H5Dget_space(dset)) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot open a dataset");
    goto fail;
  }
  if (H5Tget_class(type) != cls || H5Sget_simple_extent_ndims(space) != 1 ||
      (variable_string && H5Tis_variable_str(type) <= 0)) {
    rc = err_set(ERR_FORMAT, "%s: dataset '%s' has the wrong type or rank%s", path, name,
                 variable_string ? " (expected 1-D variable-length strings)" : "");
    goto fail;
  }
  hsize_t dims = 0;
  H5Sget_simple_extent_dims(space, &dims, NULL);
  *length = (int64_t)dims;
  *out = dset;
  dset = H5I_INVALID_HID;
fail:
  shard_close_id(&space);
  shard_close_id(&type);
  shard_close_id(&dset);
  return rc;
}

/* Opens path and checks everything that can be checked without reading the rows: attributes,
 * dataset types and lengths, indptr[0] == 0 and indptr[N] == E. Fills info. */
static int shard_open_structure(const char *path, shard_handles *h, shard_info *info) {
  struct stat st;
  int rc = 0;
  memset(info, 0, sizeof *info);
  h->file = h->vectors = h->data = h->indices = h->indptr = h->doc_ids = h->vocab =
      H5I_INVALID_HID;
  if (stat(path, &st) < 0) return err_set(ERR_IO, "%s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return err_set(ERR_IO, "%s: not a regular file", path);
  if ((h->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
    return shard_h5_error(ERR_FORMAT, path, "not a readable HDF5 file (truncated or corrupted?)");

  char format[64] = "";
  if (H5Aexists(h->file, "format") <= 0) {
    H5Eclear2(H5E_DEFAULT);
    rc = err_set(ERR_FORMAT, "%s: not a spladex shard (no 'format' attribute)", path);
    goto fail;
  }
  if ((rc = shard_read_attr_string(h->file, "/", "format", format, sizeof format, path)) < 0)
    goto fail;
  if (strcmp(format, SHARD_FORMAT)) {
    rc = err_set(ERR_FORMAT, "%s: not a spladex shard (format is '%s', expected '%s')", path,
                 format, SHARD_FORMAT);
    goto fail;
  }
  int32_t format_version = 0, max_length = 0, top_k = 0;
  if ((rc = shard_read_attr_numbers(h->file, "/", "format_version", H5T_NATIVE_INT32,
                                    &format_version, 0, path)) < 0)
    goto fail;
  if (format_version != SHARD_FORMAT_VERSION) {
    rc = err_set(ERR_FORMAT, "%s: shard format_version %d is not supported (this build reads %d)",
                 path, (int)format_version, SHARD_FORMAT_VERSION);
    goto fail;
  }
  info->format_version = format_version;
  if ((rc = shard_read_attr_string(h->file, "/", "model", info->model, sizeof info->model,
                                   path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "max_length", H5T_NATIVE_INT32, &max_length, 0,
                                    path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "threshold", H5T_NATIVE_FLOAT, &info->threshold,
                                    0, path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "top_k", H5T_NATIVE_INT32, &top_k, 0, path)) <
          0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "first_doc", H5T_NATIVE_INT64, &info->first_doc,
                                    0, path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "n_docs", H5T_NATIVE_INT64, &info->n_docs, 0,
                                    path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "input_start", H5T_NATIVE_INT64,
                                    &info->input_start, 0, path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "input_end", H5T_NATIVE_INT64, &info->input_end,
                                    0, path)) < 0)
    goto fail;
  info->max_length = max_length;
  info->top_k = top_k;
  if (info->n_docs < 0 || info->first_doc < 0) {
    rc = err_set(ERR_FORMAT, "%s: negative n_docs or first_doc attribute", path);
    goto fail;
  }

  if (H5Lexists(h->file, "vectors", H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    rc = err_set(ERR_FORMAT, "%s: missing group 'vectors'", path);
    goto fail;
  }
  if ((h->vectors = H5Gopen2(h->file, "vectors", H5P_DEFAULT)) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot open group 'vectors'");
    goto fail;
  }
  char encoding[64] = "";
  int64_t shape[2] = {0, 0};
  if ((rc = shard_read_attr_string(h->vectors, "/vectors", "encoding-type", encoding,
                                   sizeof encoding, path)) < 0)
    goto fail;
  if (strcmp(encoding, "csr_matrix")) {
    rc = err_set(ERR_FORMAT, "%s: /vectors encoding-type is '%s', expected 'csr_matrix'", path,
                 encoding);
    goto fail;
  }
  if ((rc = shard_read_attr_numbers(h->vectors, "/vectors", "shape", H5T_NATIVE_INT64, shape, 2,
                                    path)) < 0)
    goto fail;
  if (shape[0] != info->n_docs || shape[1] <= 0 || shape[1] > INT32_MAX) {
    rc = err_set(ERR_FORMAT, "%s: /vectors shape [%lld, %lld] disagrees with n_docs %lld", path,
                 (long long)shape[0], (long long)shape[1], (long long)info->n_docs);
    goto fail;
  }
  info->vocab_size = (int)shape[1];

  int64_t data_length = 0, indices_length = 0, indptr_length = 0, ids_length = 0, vocab_length = 0;
  if ((rc = shard_open_dataset(h->vectors, "data", H5T_FLOAT, 0, path, &h->data, &data_length)) <
          0 ||
      (rc = shard_open_dataset(h->vectors, "indices", H5T_INTEGER, 0, path, &h->indices,
                               &indices_length)) < 0 ||
      (rc = shard_open_dataset(h->vectors, "indptr", H5T_INTEGER, 0, path, &h->indptr,
                               &indptr_length)) < 0 ||
      (rc = shard_open_dataset(h->file, "doc_ids", H5T_STRING, 1, path, &h->doc_ids,
                               &ids_length)) < 0 ||
      (rc = shard_open_dataset(h->file, "vocab", H5T_STRING, 1, path, &h->vocab, &vocab_length)) <
          0)
    goto fail;
  hid_t data_type = H5Dget_type(h->data);
  size_t value_size = data_type >= 0 ? H5Tget_size(data_type) : 0;
  if (data_type >= 0) H5Tclose(data_type);
  if (value_size != 2 && value_size != 4 && value_size != 8) {
    rc = err_set(ERR_FORMAT, "%s: /vectors/data has %zu-byte values (expected float16/32/64)",
                 path, value_size);
    goto fail;
  }
  info->value_bits = (int)(8 * value_size);
  if (data_length != indices_length || indptr_length != info->n_docs + 1 ||
      ids_length != info->n_docs || vocab_length != info->vocab_size) {
    rc = err_set(ERR_FORMAT,
                 "%s: dataset lengths disagree (data %lld, indices %lld, indptr %lld, doc_ids "
                 "%lld, vocab %lld; n_docs %lld, vocab_size %d)",
                 path, (long long)data_length, (long long)indices_length, (long long)indptr_length,
                 (long long)ids_length, (long long)vocab_length, (long long)info->n_docs,
                 info->vocab_size);
    goto fail;
  }
  info->nnz = data_length;
  int64_t first = -1, last = -1;
  if (shard_read_1d(h->indptr, H5T_NATIVE_INT64, 0, 1, &first) < 0 ||
      shard_read_1d(h->indptr, H5T_NATIVE_INT64, info->n_docs, 1, &last) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot read /vectors/indptr");
    goto fail;
  }
  if (first != 0 || last != info->nnz) {
    rc = err_set(ERR_FORMAT, "%s: /vectors/indptr runs from %lld to %lld, expected 0 to %lld",
                 path, (long long)first, (long long)last, (long long)info->nnz);
    goto fail;
  }
  return 0;
fail:
  shard_handles_close(h);
  return rc;
}

int shard_check(const char *path, int64_t first_doc, int64_t n_docs, shard_info *info) {
  shard_quiet();
  shard_handles h;
  shard_info local;
  shard_info *out = info ? info : &local;
  int rc = shard_open_structure(path, &h, out);
  if (rc < 0) return rc;
  shard_handles_close(&h);
  if (first_doc >= 0 && out->first_doc != first_doc)
    return err_set(ERR_MISMATCH, "%s: first_doc is %lld, expected %lld", path,
                   (long long)out->first_doc, (long long)first_doc);
  if (n_docs >= 0 && out->n_docs != n_docs)
    return err_set(ERR_MISMATCH, "%s: n_docs is %lld, expected %lld", path,
                   (long long)out->n_docs, (long long)n_docs);
  return 0;
}

/* ---- reader ---- */

static char shard_empty_string[1] = "";

struct shard_reader {
  char *path;
  shard_handles h;
  shard_info info;
  hid_t string_type;
  hid_t value_type;          /* memory type for /vectors/data (float, or the half type) */
  char **vocab;              /* (V) HDF5-allocated strings, shard_empty_string for NULL */
  /* the cached window: rows [window_start, window_start + window_rows), validated */
  int64_t window_start, window_rows;
  int64_t *window_indptr;    /* (window_rows + 1) absolute offsets into data / indices */
  char **window_ids;         /* (window_rows) HDF5-allocated strings */
  int64_t window_cap;        /* rows allocated in window_indptr / window_ids */
  int32_t *window_indices;   /* (window_entries) from offset window_indptr[0] */
  float *window_values;      /* (window_entries) */
  uint16_t *window_half;     /* (window_entries), float16 files only */
  int64_t window_entries_cap;
  int64_t *out_indptr;       /* (out_rows_cap + 1) the rows asked for, rebased to 0 */
  int64_t out_rows_cap;
};

static void shard_free_strings(char **strings, int64_t n) {
  if (!strings) return;
  for (int64_t i = 0; i < n; i++)
    if (strings[i] && strings[i] != shard_empty_string) H5free_memory(strings[i]);
}

/* Reads n strings at offset of a vlen string dataset into out (NULL entries become ""). */
static herr_t shard_read_strings(hid_t dset, hid_t string_type, int64_t offset, int64_t n,
                                 char **out) {
  for (int64_t i = 0; i < n; i++) out[i] = NULL;
  herr_t status = shard_read_1d(dset, string_type, offset, n, out);
  for (int64_t i = 0; i < n; i++)
    if (!out[i]) out[i] = shard_empty_string;
  return status;
}

void shard_reader_close(shard_reader *r) {
  if (!r) return;
  shard_quiet();
  if (r->vocab) shard_free_strings(r->vocab, r->info.vocab_size);
  if (r->window_ids) shard_free_strings(r->window_ids, r->window_rows);
  shard_handles_close(&r->h);
  shard_close_id(&r->string_type);
  shard_close_id(&r->value_type);
  free(r->vocab);
  free(r->window_indptr);
  free(r->window_ids);
  free(r->window_indices);
  free(r->window_values);
  free(r->window_half);
  free(r->out_indptr);
  free(r->path);
  free(r);
}

int shard_reader_open(const char *path, shard_reader **out) {
  shard_quiet();
  *out = NULL;
  int rc = 0;
  shard_reader *r = calloc(1, sizeof *r);
  if (!r) return err_set(ERR_NOMEM, "%s: out of memory", path);
  r->h.file = r->h.vectors = r->h.data = r->h.indices = r->h.indptr = r->h.doc_ids = r->h.vocab =
      H5I_INVALID_HID;
  r->string_type = r->value_type = H5I_INVALID_HID;
  r->window_rows = -1; /* nothing cached */
  if (!(r->path = malloc(strlen(path) + 1))) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  strcpy(r->path, path);
  if ((rc = shard_open_structure(path, &r->h, &r->info)) < 0) goto fail;
  if ((r->string_type = shard_string_type()) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot make the HDF5 string type");
    goto fail;
  }
  if (r->info.value_bits == 16) {
    if ((r->value_type = shard_half_type()) < 0) {
      rc = shard_h5_error(ERR_FORMAT, path, "cannot make the HDF5 float16 type");
      goto fail;
    }
  } else if ((r->value_type = H5Tcopy(H5T_NATIVE_FLOAT)) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot make the HDF5 float type");
    goto fail;
  }
  if (!(r->vocab = calloc((size_t)r->info.vocab_size, sizeof *r->vocab))) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  if (shard_read_strings(r->h.vocab, r->string_type, 0, r->info.vocab_size, r->vocab) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot read /vocab");
    goto fail;
  }
  *out = r;
  return 0;
fail:
  shard_reader_close(r);
  return rc;
}

const shard_info *shard_reader_info(const shard_reader *r) { return &r->info; }

const char *shard_reader_term(const shard_reader *r, int v) {
  if (v < 0 || v >= r->info.vocab_size) return NULL;
  return r->vocab[v];
}

/* Makes the window cover rows [row, row + n). On a miss it reads, from row on, up to
 * max(n, SHARD_READ_WINDOW) rows, cut so their entries stay within
 * max(entries of the n rows, SHARD_READ_ENTRIES): indptr, doc ids, indices and values, and
 * validates them all (indptr monotone and in bounds, indices ascending and below V). */
static int shard_load_window(shard_reader *r, int64_t row, int64_t n) {
  if (r->window_rows >= 0 && row >= r->window_start &&
      row + n <= r->window_start + r->window_rows)
    return 0;
  int64_t rows = n > SHARD_READ_WINDOW ? n : SHARD_READ_WINDOW;
  if (rows > r->info.n_docs - row) rows = r->info.n_docs - row;
  if (r->window_ids) shard_free_strings(r->window_ids, r->window_rows);
  r->window_rows = -1;
  if (rows > r->window_cap) {
    free(r->window_indptr);
    free(r->window_ids);
    r->window_indptr = malloc((size_t)(rows + 1) * sizeof *r->window_indptr);
    r->window_ids = calloc((size_t)rows, sizeof *r->window_ids);
    r->window_cap = 0;
    if (!r->window_indptr || !r->window_ids)
      return err_set(ERR_NOMEM, "%s: out of memory for %lld rows", r->path, (long long)rows);
    r->window_cap = rows;
  }
  int64_t *p = r->window_indptr;
  if (shard_read_1d(r->h.indptr, H5T_NATIVE_INT64, row, rows + 1, p) < 0)
    return shard_h5_error(ERR_FORMAT, r->path, "cannot read /vectors/indptr");
  for (int64_t i = 0; i < rows; i++) {
    if (p[i] < 0 || p[i + 1] < p[i] || p[i + 1] > r->info.nnz)
      return err_set(ERR_FORMAT, "%s: broken /vectors/indptr at row %lld (%lld -> %lld, nnz %lld)",
                     r->path, (long long)(row + i), (long long)p[i], (long long)p[i + 1],
                     (long long)r->info.nnz);
  }
  int64_t limit = p[n] - p[0] > SHARD_READ_ENTRIES ? p[n] - p[0] : SHARD_READ_ENTRIES;
  while (rows > n && p[rows] - p[0] > limit) rows--;
  int64_t entries = p[rows] - p[0];
  if (entries > r->window_entries_cap) {
    free(r->window_indices);
    free(r->window_values);
    free(r->window_half);
    r->window_half = NULL;
    r->window_entries_cap = 0;
    r->window_indices = malloc((size_t)entries * sizeof *r->window_indices);
    r->window_values = malloc((size_t)entries * sizeof *r->window_values);
    if (r->info.value_bits == 16) r->window_half = malloc((size_t)entries * sizeof *r->window_half);
    if (!r->window_indices || !r->window_values || (r->info.value_bits == 16 && !r->window_half))
      return err_set(ERR_NOMEM, "%s: out of memory for %lld entries", r->path, (long long)entries);
    r->window_entries_cap = entries;
  }
  if (entries > 0) {
    if (shard_read_1d(r->h.indices, H5T_NATIVE_INT32, p[0], entries, r->window_indices) < 0)
      return shard_h5_error(ERR_FORMAT, r->path, "cannot read /vectors/indices");
    void *target = r->info.value_bits == 16 ? (void *)r->window_half : (void *)r->window_values;
    if (shard_read_1d(r->h.data, r->value_type, p[0], entries, target) < 0)
      return shard_h5_error(ERR_FORMAT, r->path, "cannot read /vectors/data");
    if (r->info.value_bits == 16)
      for (int64_t i = 0; i < entries; i++)
        r->window_values[i] = shard_half_to_float(r->window_half[i]);
  }
  const int32_t *ix = r->window_indices;
  for (int64_t d = 0; d < rows; d++) {
    for (int64_t k = p[d] - p[0]; k < p[d + 1] - p[0]; k++) {
      int32_t v = ix[k];
      if (v < 0 || v >= r->info.vocab_size || (k > p[d] - p[0] && v <= ix[k - 1]))
        return err_set(ERR_FORMAT, "%s: row %lld: term index %d at entry %lld is %s", r->path,
                       (long long)(row + d), (int)v, (long long)(p[0] + k),
                       v < 0 || v >= r->info.vocab_size ? "outside the vocabulary"
                                                        : "not ascending");
    }
  }
  if (shard_read_strings(r->h.doc_ids, r->string_type, row, rows, r->window_ids) < 0) {
    for (int64_t i = 0; i < rows; i++) r->window_ids[i] = NULL;
    return shard_h5_error(ERR_FORMAT, r->path, "cannot read /doc_ids");
  }
  r->window_start = row;
  r->window_rows = rows;
  return 0;
}

int shard_reader_rows(shard_reader *r, int64_t row, int64_t n, const char *const **doc_ids,
                      const int64_t **indptr, const int32_t **indices, const float **values) {
  static const char *const no_ids[1] = {NULL};
  shard_quiet();
  if (row < 0 || n < 0 || row + n > r->info.n_docs)
    return err_set(ERR_ARG, "%s: rows [%lld, %lld) are outside the shard's %lld rows", r->path,
                   (long long)row, (long long)(row + n), (long long)r->info.n_docs);
  int rc = 0;
  if (!r->out_indptr || n > r->out_rows_cap) {
    free(r->out_indptr);
    r->out_rows_cap = 0;
    if (!(r->out_indptr = malloc((size_t)(n + 1) * sizeof *r->out_indptr)))
      return err_set(ERR_NOMEM, "%s: out of memory", r->path);
    r->out_rows_cap = n;
  }
  r->out_indptr[0] = 0;
  *doc_ids = no_ids;
  *indptr = r->out_indptr;
  *indices = r->window_indices;
  *values = r->window_values;
  if (n == 0) return 0;
  if ((rc = shard_load_window(r, row, n)) < 0) return rc;
  const int64_t *p = r->window_indptr + (row - r->window_start);
  int64_t begin = p[0] - r->window_indptr[0];
  for (int64_t i = 0; i <= n; i++) r->out_indptr[i] = p[i] - p[0];
  *doc_ids = (const char *const *)(r->window_ids + (row - r->window_start));
  *indices = r->window_indices + begin;
  *values = r->window_values + begin;
  return 0;
}
