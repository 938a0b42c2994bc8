/* shard_dir: the shard files of an output directory, and the one rule that says whether it holds
 * a complete job (DESIGN.md sections 4 and 5).
 *
 * An output directory of `spladex expand` holds job.json (io/jobfile.h), shard-NNNNN.h5 files
 * (io/shard.h), and shard-NNNNN.h5.tmp for a shard being written or interrupted. Every command
 * that reads such a directory lists it with sdir_list; `verify` and `export` judge it by one rule:
 *
 *   expected   shards 0 .. n-1 must exist under their final names. n is job.json's n_shards once
 *              the job has read its whole input; without it (no job.json, or an unfinished job),
 *              n is the largest index listed, final or partial (.tmp), plus one: gaps are found,
 *              missing trailing shards cannot be (sdir_expected).
 *   complete   job.json is a finished job (it has n_shards, consistent with n_docs_total and
 *              shard_size), shards 0 .. n-1 all exist, none exists past them
 *              (sdir_check_complete), and each one passes sdir_check_shard.
 *   tiling     shard s holds documents [s * S, s * S + n_docs). S is job.json's shard_size;
 *              without job.json, the n_docs of the first shard checked that is not the last (or,
 *              for the last shard s > 0 when none was, its first_doc / s). n_docs is S for every
 *              shard but the last expected one, 1 .. S for that one (exactly the remainder when
 *              job.json has n_docs_total). All shards have the vocab_size of the first one
 *              checked, and the model, max_length, threshold and top_k of job.json.
 *
 * `export` refuses a directory that breaks any of this with one error; `verify` walks the same
 * steps and prints one line per problem. `info` and the expand pipeline only list.
 */
#ifndef SPLADEX_SHARD_DIR_H
#define SPLADEX_SHARD_DIR_H

#include <stdint.h>

#include "jobfile.h"
#include "shard.h"

typedef struct {
  int64_t index; /* s of shard-s.h5 (or shard-s.h5.tmp) */
  char *path;    /* "dir/name" as listed; owned by the listing */
} sdir_file;

typedef struct {
  char *dir;           /* the directory as given */
  sdir_file *shards;   /* (n_shards) final names, ascending index */
  int64_t n_shards;
  sdir_file *partials; /* (n_partials) .tmp names, ascending index */
  int64_t n_partials;
} sdir_listing;

/* Lists the shard files of dir (names as io/jobfile.h's job_shard_index accepts them; other files
 * are ignored). Returns 0 and fills *out (free with sdir_listing_free), or ERR_IO naming the
 * directory / ERR_NOMEM; *out is empty on error. */
int sdir_list(const char *dir, sdir_listing *out);

/* Frees what sdir_list allocated and empties *l. A zeroed or already freed listing is fine. */
void sdir_listing_free(sdir_listing *l);

/* The path of shard s under its final name (partial 0) or of its .tmp (partial 1), borrowed from
 * the listing, or NULL when it is not there. */
const char *sdir_find(const sdir_listing *l, int64_t s, int partial);

/* The number of shards the directory must hold (the rule above): job->n_shards when job is not
 * NULL and has it, else the largest listed index, final or partial, plus one (0 when none). job
 * is NULL when the directory has no job.json. */
int64_t sdir_expected(const sdir_listing *l, const job_params *job);

/* Checks that a finished job.json is consistent: n_shards == ceil(n_docs_total / shard_size).
 * Returns 0 (also for an unfinished job, without n_shards), or ERR_MISMATCH naming
 * dir/job.json and the three numbers. */
int sdir_check_job(const char *dir, const job_params *job);

/* The listing part of "complete": 0 when job (NULL without job.json) is a finished, consistent
 * job or absent, the directory holds at least one shard or job.json says it has none, and every
 * expected shard exists with its final name, none past them. Else ERR_MISMATCH with one message:
 * the unfinished job ("... has not finished ..."), sdir_check_job's, "no shards", a shard past
 * job.json's n_shards, or "incomplete shard directory, K of N shards missing: " naming up to 16
 * of them (noting those with only a partial .tmp). */
int sdir_check_complete(const sdir_listing *l, const job_params *job);

/* The tiling and attribute checks of consecutive shards (the rule above). */
typedef struct {
  const job_params *job;  /* borrowed; NULL without job.json */
  int64_t n_shards;       /* sdir_expected: the last shard is n_shards - 1 */
  int64_t shard_size;     /* S; 0 until known (no job.json) */
  int vocab_size;         /* of the first shard accepted; 0 until then */
  const char *vocab_path; /* that shard's path (borrowed) */
} sdir_tiling;

/* Starts the checks for a directory of n_shards expected shards (sdir_expected) and job (NULL
 * without job.json; borrowed, must outlive t). */
void sdir_tiling_init(sdir_tiling *t, const job_params *job, int64_t n_shards);

/* Checks shard s (0 <= s < n_shards) at path (borrowed, must outlive t): shard_check's structure,
 * then first_doc, n_docs, vocab_size and the attributes against the rule. Shards may be checked
 * in any ascending order, with gaps. Returns 0 and fills *info (when not NULL), or shard_check's
 * ERR_IO / ERR_FORMAT, or ERR_MISMATCH ("PATH: first_doc is F, expected ...", "PATH: n_docs is
 * N, expected ...", "PATH: vocab_size V, but OTHER has W", "PATH: attribute 'A' disagrees with
 * job.json"); every message starts with the path. */
int sdir_check_shard(sdir_tiling *t, int64_t s, const char *path, shard_info *info);

#endif
