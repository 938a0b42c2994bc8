/* atomic_file: publishing a finished file under its final name so that a crash, a kill or a power
 * loss leaves either no file (or the old one) or the complete new one there, never a part.
 *
 * The writer writes the whole file under a temporary name in the same directory (PATH.tmp,
 * shard-NNNNN.h5.tmp, job.json.tmp.HOST.PID), closes it, and calls atomic_publish, which
 *   1. fsyncs the temporary file: its bytes are on disk before any name points to them;
 *   2. renames it to the final name: atomic within one file system;
 *   3. fsyncs the directory: the rename itself survives a power loss.
 * Used by the shard writer, job.json and `export`.
 */
#ifndef SPLADEX_ATOMIC_FILE_H
#define SPLADEX_ATOMIC_FILE_H

/* Publishes the closed file tmp_path as path (same directory) with the three steps above.
 * Returns 0, or ERR_IO (ERR_NOMEM) with a message naming the file and the step:
 *   "TMP: fsync failed: why", "TMP: cannot rename to PATH: why",
 *   "DIR: fsync of the directory failed: why" (DIR is path's directory, "." when path has none).
 * Either way tmp_path no longer exists afterwards: when the rename did not happen it is removed.
 * After a failed directory fsync path holds the complete file; only the rename's durability is
 * in doubt. */
int atomic_publish(const char *tmp_path, const char *path);

#endif
