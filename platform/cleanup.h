/* cleanup.h: scope-bound cleanup helpers (__attribute__((cleanup))) in the style of systemd. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void plat_freep(void *p) {
        free(*(void **)p);
}

static inline void plat_closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void plat_fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

static inline void plat_closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_closedir_ _cleanup_(plat_closedirp)
#define _cleanup_free_ _cleanup_(plat_freep)
#define _cleanup_close_ _cleanup_(plat_closep)
#define _cleanup_fclose_ _cleanup_(plat_fclosep)

/* Defines a cleanup function freep-style for a type with a NULL-safe destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        func(*p);               \
        }

/* Hands ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                  \
        ({                           \
                typeof(p) _p_ = (p); \
                (p) = NULL;          \
                _p_;                 \
        })

#define TAKE_FD(fd)              \
        ({                       \
                int _fd_ = (fd); \
                (fd) = -1;       \
                _fd_;            \
        })

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
