/* shard_writer: the HDF5 shard writer (layout in shard.h and DESIGN.md section 4).
 *
 * The writer appends to chunked, extendible 1-D datasets through fixed buffers (entries, indptr,
 * doc ids), so its memory does not depend on the shard size.
 *
 * Compression is the writer's bottleneck (shuffle + deflate of /vectors/data and /indices: ~3/4
 * of its time), and the writer is the one thread every row of `spladex expand` goes through. So
 * the writer compresses full chunks of those two datasets itself, on a few threads of its own:
 * the calling thread copies a chunk into a job, a pool thread shuffles it (by element size) and
 * deflates it into one zlib stream (what HDF5's shuffle and deflate filters store, so readers
 * decode it through the pipeline recorded in the dataset: shuffle, deflate level 4), and the
 * calling thread writes the jobs in order with H5Dwrite_chunk after extending the dataset: HDF5
 * is not thread-safe and only the calling thread ever touches it. The last, partial chunk goes
 * the same way, zero-padded to the full chunk (HDF5 pads an edge chunk the same way; the extent
 * limits what readers see). While the calling thread would wait for a job, it compresses a
 * queued one itself; with no pool thread it compresses every job. Jobs are a ring of
 * 2 * (threads + 1): memory stays bounded.
 *
 * The stream is deflated byte plane by byte plane (shard_deflate_planes), each with the zlib mode
 * that suits it, switched with deflateParams inside the one stream (any inflater reads it):
 * SPLADE rows shuffle into planes of near-random bytes (the low mantissa bytes of the weights, the
 * low byte of the term ids), planes of few symbols without order (the weights' exponents), and
 * planes of runs (the term ids' high bytes, zeros). Level 4's match search on all of them was
 * ~60% of a whole `expand` pipeline's CPU time (benchmarks/RESULTS.md, issue 18 item 4): stored
 * blocks, Huffman coding alone and level 3 respectively give about the same size 3-5x faster.
 * Legend: E stored entries (nnz).
 */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "atomic_file.h"
#include "cu_dtype.h"
#include "err.h"
#include "shard.h"
#include "shard_format.h"

enum {
  SHARD_ENTRY_BUFFER = 65536,   /* entries buffered by the writer = data/indices chunk */
  SHARD_INDPTR_BUFFER = 16384,  /* indptr values buffered = indptr chunk */
  SHARD_ID_BUFFER = 4096,       /* doc ids buffered = doc_ids / vocab chunk */
  SHARD_ID_BYTES = 1 << 20,     /* flush the doc ids early once their text passes this */
  SHARD_DEFLATE_LEVEL = 4,
  SHARD_MAX_THREADS = 16        /* compression threads of one writer, at most */
};

/* ---- HDF5 helpers ---- */

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
  int has_windows;            /* set_windows was called: windows is written at finish */
  shard_windows windows;
  int failed;                 /* an append failed: finish refuses */
  int64_t n_docs, nnz;        /* rows and entries appended so far (buffered included) */
  int64_t entries_written, indptr_written, ids_written; /* in the file (entries: or queued) */
  int entries_buffered, indptr_buffered, ids_buffered;
  int32_t *indices_buffer;    /* (SHARD_ENTRY_BUFFER) */
  float *values_buffer;       /* (SHARD_ENTRY_BUFFER) */
  uint16_t *half_buffer;      /* (SHARD_ENTRY_BUFFER), float16 only */
  /* the writer's own compression (threads >= 0): see shard_submit_chunk */
  int threads;                /* pool threads wanted (0: the calling thread compresses); -1 =
                                 HDF5's filters on the calling thread */
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

/* The zlib level and strategy for one shuffled byte plane p[0..n), from the byte histogram of
 * every 4th byte (and how often it equals the byte before it; a sample is as telling, at a
 * quarter of the cost):
 * near 8 bits of entropy per byte, nothing to gain: stored (level 0); runs (a byte equal to the
 * one before clearly more often than independent draws from the histogram would be, or a plane
 * of almost one value): LZ77 matching at level 3; else symbols without order: Huffman coding
 * only (the match search finds little there and costs most). */
static void shard_plane_mode(const unsigned char *p, size_t n, int *level, int *strategy) {
  size_t hist[256] = {0}, repeats = 0, sampled = 0;
  for (size_t i = 4; i < n; i += 4, sampled++) {
    hist[p[i]]++;
    repeats += p[i] == p[i - 1];
  }
  double entropy = 0, collisions = 0; /* bits per byte; P(two independent draws are equal) */
  for (int k = 0; k < 256; k++) {
    if (!hist[k]) continue;
    const double q = (double)hist[k] / (double)sampled;
    entropy -= q * log2(q);
    collisions += q * q;
  }
  *level = 3;
  *strategy = Z_DEFAULT_STRATEGY;
  if (entropy >= 7.9)
    *level = 0;
  else if (entropy >= 0.5 && (double)repeats / (double)sampled < collisions + 0.1)
    *strategy = Z_HUFFMAN_ONLY;
}

/* Deflates the planes of in (size planes of n bytes, back to back) into one zlib stream in
 * out[0..cap), each plane with shard_plane_mode's level and strategy. Returns the stream's bytes,
 * or 0 when zlib refused (the caller falls back to compress2). */
static size_t shard_deflate_planes(const unsigned char *in, size_t n, size_t size,
                                   unsigned char *out, size_t cap) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit(&z, SHARD_DEFLATE_LEVEL) != Z_OK) return 0;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  int status = Z_OK;
  for (size_t k = 0; k < size && status == Z_OK; k++) {
    int level, strategy;
    shard_plane_mode(in + k * n, n, &level, &strategy);
    if (deflateParams(&z, level, strategy) != Z_OK) status = Z_BUF_ERROR;
    z.next_in = (unsigned char *)(uintptr_t)(in + k * n); /* zlib does not write it */
    z.avail_in = (uInt)n;
    if (status == Z_OK) status = deflate(&z, k + 1 == size ? Z_FINISH : Z_NO_FLUSH);
  }
  const size_t bytes = status == Z_STREAM_END ? (size_t)z.total_out : 0;
  deflateEnd(&z);
  return bytes;
}

/* What HDF5's shuffle filter and then its deflate filter store for a full chunk (H5Zshuffle.c,
 * H5Zdeflate.c): byte k of every element together, then one zlib stream of the whole chunk
 * (shard_deflate_planes; compress2 at SHARD_DEFLATE_LEVEL if zlib refused that). */
static void shard_compress_job(shard_chunk_job *job) {
  const size_t n = SHARD_ENTRY_BUFFER, size = job->element_size;
  unsigned char *dst = job->shuffled;
  const unsigned char *src = job->raw;
  if (size == 4) { /* one pass over raw (the planes are written in step) */
    for (size_t i = 0; i < n; i++, src += 4) {
      dst[i] = src[0];
      dst[n + i] = src[1];
      dst[2 * n + i] = src[2];
      dst[3 * n + i] = src[3];
    }
  } else {
    for (size_t k = 0; k < size; k++)
      for (size_t i = 0; i < n; i++) dst[k * n + i] = src[i * size + k];
  }
  job->out_bytes = shard_deflate_planes(job->shuffled, n, size, job->out, job->out_cap);
  job->zlib_status = Z_OK;
  if (job->out_bytes == 0) {
    uLongf out_bytes = (uLongf)job->out_cap;
    job->zlib_status =
        compress2(job->out, &out_bytes, job->shuffled, (uLong)(n * size), SHARD_DEFLATE_LEVEL);
    job->out_bytes = (size_t)out_bytes;
  }
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
    job->out_cap = (size_t)compressBound((uLong)chunk_bytes) + 1024; /* + block headers */
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
    cu_convert(w->values_buffer, (size_t)n, CU_F16, w->half_buffer); /* binary16, ties to even */
    values = w->half_buffer;
    value_type = w->half_type;
  }
  if (w->threads >= 0) {
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

/* The compression threads for meta: meta->compress_threads, at most SHARD_MAX_THREADS (0: the
 * calling thread compresses the jobs); -1 (HDF5's filters) for less than 0, and on a big-endian
 * host (the jobs hold the entries as they are in memory, and the file's types are
 * little-endian). */
static int shard_compress_threads(const shard_meta *meta) {
  const uint16_t one = 1;
  unsigned char first_byte;
  memcpy(&first_byte, &one, 1);
  if (meta->compress_threads < 0 || first_byte != 1) return -1;
  return meta->compress_threads < SHARD_MAX_THREADS ? meta->compress_threads : SHARD_MAX_THREADS;
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
  w->threads = shard_compress_threads(meta);
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

int shard_writer_set_windows(shard_writer *w, const shard_windows *win) {
  w->windows = *win;
  w->has_windows = 1;
  return 0;
}

int shard_writer_finish(shard_writer *w) {
  char tmp[4200], path[4200];
  int rc = shard_writer_close(w, tmp, path, sizeof path);
  /* fsync, rename, fsync the directory. On a failure the .tmp is gone already; after a failed
   * directory fsync the shard is complete under its final name, only the rename's durability is
   * in doubt. */
  return rc < 0 ? rc : atomic_publish(tmp, path);
}

int shard_writer_close(shard_writer *w, char *tmp_out, char *path_out, size_t cap) {
  shard_quiet();
  int rc = 0;
  if (strlen(w->tmp_path) >= cap) {
    rc = err_set(ERR_ARG, "%s: the path is longer than %zu bytes", w->tmp_path, cap - 1);
    goto fail;
  }
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
      shard_attr_numbers(w->vectors, "shape", H5T_STD_I64LE, H5T_NATIVE_INT64, shape, 2) < 0 ||
      (w->has_windows &&
       (shard_attr_i64(w->file, "windows_total", w->windows.total) < 0 ||
        shard_attr_i64(w->file, "windows_min", w->windows.min) < 0 ||
        shard_attr_i64(w->file, "windows_max", w->windows.max) < 0 ||
        shard_attr_i64(w->file, "windows_capped", w->windows.capped) < 0 ||
        shard_attr_i64(w->file, "first_capped_doc", w->windows.first_capped) < 0))) {
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
  memcpy(tmp_out, w->tmp_path, strlen(w->tmp_path) + 1);
  memcpy(path_out, w->path, strlen(w->path) + 1);
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
