/* safetensors.h - memory-mapped safetensors files (header parsed and validated, data mapped).
 *
 * Validation at open: the path is a regular file (a FIFO is refused, never waited on); the header
 * length is within the file and at most 16 MiB, and the header holds at most 2^18 JSON values
 * (counted before parsing); the header is a JSON object, every entry has a known dtype, a shape of
 * non-negative ints, data_offsets [begin, end] with begin <= end, end within the data region,
 * end - begin = prod(shape) * dtype size, and no two tensors overlap. Each error names the file
 * and the tensor or byte offset at fault.
 */
#ifndef PI0_SAFETENSORS_H
#define PI0_SAFETENSORS_H

#include <stdint.h>
#include <stddef.h>

#include "pi0.h"
#include "ops/ops.h"

#define PI0_ST_MAX_DIMS 8

typedef struct {
    char *name;
    pi0_dtype dtype;
    int ndim;
    int64_t shape[PI0_ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* into the mapping */
    size_t nbytes;
} pi0_st_tensor;

typedef struct {
    char *path;
    void *map;        /* whole file, read-only */
    size_t map_size;
    int n_tensors;
    pi0_st_tensor *tensors; /* sorted by name */
    char *metadata_json;    /* "__metadata__" re-serialized, or NULL */
} pi0_st_file;

/* Open and validate; on error *out is NULL and pi0_last_error() names the problem. */
pi0_status pi0_st_open(const char *path, pi0_st_file **out);
void pi0_st_close(pi0_st_file *f);
/* Find by exact name; NULL if absent. */
const pi0_st_tensor *pi0_st_find(const pi0_st_file *f, const char *name);
const char *pi0_dtype_name(pi0_dtype t);
size_t pi0_dtype_size(pi0_dtype t);

/* Read a tensor as float32 into a new malloc'd array (converting F32/BF16/F16/I32/I64 exactly or
 * by value). Caller frees. */
pi0_status pi0_st_read_f32(const pi0_st_file *f, const char *name, float **out, int64_t *numel);
pi0_status pi0_st_read_i32(const pi0_st_file *f, const char *name, int32_t **out, int64_t *numel);

/* Writing: a small builder that collects tensors and writes a file in one go. */
typedef struct pi0_st_writer pi0_st_writer;
pi0_st_writer *pi0_st_writer_new(void);
/* Copies name and shape; `data` must stay valid until pi0_st_writer_save. */
pi0_status pi0_st_writer_add(pi0_st_writer *w, const char *name, pi0_dtype dtype, int ndim,
                             const int64_t *shape, const void *data);
pi0_status pi0_st_writer_save(pi0_st_writer *w, const char *path);
/* Streaming save for files too large to hold in memory: tensors added with data == NULL are
 * produced by fill(i, buf, nbytes, user) in order (i = index of the tensor as added). */
typedef pi0_status (*pi0_st_fill_fn)(int i, void *buf, size_t nbytes, void *user);
pi0_status pi0_st_writer_save_stream(pi0_st_writer *w, const char *path, pi0_st_fill_fn fill, void *user);
void pi0_st_writer_free(pi0_st_writer *w);

#endif
