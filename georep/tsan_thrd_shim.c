// TSan builds only (georep/CMakeLists.txt). Debian's librdkafka makes its threads, mutexes and
// condition variables with C11 <threads.h> (thrd_create, mtx_lock, cnd_wait...). glibc implements
// those by calling its internal pthread functions directly, past the symbols ThreadSanitizer
// intercepts, so TSan would not know librdkafka's threads exist nor see its locks: every hand-off
// through librdkafka (a message queued by our thread, its delivery report served on another)
// would look like a data race, and code of ours running on a librdkafka thread (the log
// callback) would run on a thread TSan never started.
//
// This file defines those C11 functions in the test executable, on top of the public pthread
// functions TSan intercepts. The dynamic linker binds librdkafka's references to the
// executable's definitions before libc's, so librdkafka uses these. On glibc, thrd_t is a
// pthread_t, and mtx_t, cnd_t and once_flag have the size and alignment of pthread_mutex_t,
// pthread_cond_t and pthread_once_t (checked below), so the casts are sound.
//
// Only what librdkafka 2.0 imports is here (nm -D --undefined-only librdkafka.so.1), plus
// thrd_detach/thrd_exit and the rest of the mtx family for completeness. thrd_current stays
// libc's: it is pthread_self either way.
//
// Destruction. librdkafka frees most objects (topics, partitions, queues) on whichever thread
// drops the last reference, and its reference counts are lock-free atomics compiled without
// TSan, so TSan sees no order between a lock's last use on one thread and its destruction on
// another, and reports a race that is not there. The destroy functions below first acquire
// what the object's last users released: a mutex or rwlock by a try-lock (POSIX allows
// destroying only an unlocked lock, so it succeeds at once and changes nothing; if it fails,
// the destroy is a real bug and TSan still reports it), a condition variable by an explicit
// acquire of what every signal and wait released (glibc's pthread_cond_destroy itself waits
// for those to finish). pthread_rwlock_destroy is TSan's own interceptor, a weak symbol: this
// strong definition wraps it, for every caller in the program. That is sound for our code too,
// since the try-lock only orders what the lock already orders.

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t is not a pthread_t");
_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is not a pthread_mutex_t");
_Static_assert(_Alignof(mtx_t) >= _Alignof(pthread_mutex_t), "mtx_t alignment");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is not a pthread_cond_t");
_Static_assert(_Alignof(cnd_t) >= _Alignof(pthread_cond_t), "cnd_t alignment");
_Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag is not a pthread_once_t");

// The TSan runtime's (compiler-rt/lib/tsan).
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
int __interceptor_pthread_rwlock_destroy(pthread_rwlock_t* rwlock);

// kafka.cc takes this symbol's address in TSan builds: the linker takes an archive member only
// for a symbol the program needs, and libc already defines everything else here.
int drfs_tsan_thrd_shim_linked = 1;

static int ThrdResult(int err) {
  switch (err) {
    case 0:
      return thrd_success;
    case ENOMEM:
      return thrd_nomem;
    case EBUSY:
      return thrd_busy;
    case ETIMEDOUT:
      return thrd_timedout;
    default:
      return thrd_error;
  }
}

struct ThrdStart {
  thrd_start_t func;
  void* arg;
};

static void* ThrdTrampoline(void* p) {
  struct ThrdStart start = *(struct ThrdStart*)p;
  free(p);
  return (void*)(intptr_t)start.func(start.arg);
}

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  struct ThrdStart* start = malloc(sizeof *start);
  if (start == NULL) return thrd_nomem;
  start->func = func;
  start->arg = arg;
  int err = pthread_create((pthread_t*)thr, NULL, ThrdTrampoline, start);
  if (err != 0) free(start);
  return ThrdResult(err);
}

int thrd_join(thrd_t thr, int* res) {
  void* value = NULL;
  int err = pthread_join((pthread_t)thr, &value);
  if (err == 0 && res != NULL) *res = (int)(intptr_t)value;
  return ThrdResult(err);
}

int thrd_detach(thrd_t thr) {
  return ThrdResult(pthread_detach((pthread_t)thr));
}

_Noreturn void thrd_exit(int res) {
  pthread_exit((void*)(intptr_t)res);
}

int mtx_init(mtx_t* mtx, int type) {
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) return thrd_error;
  if ((type & mtx_recursive) != 0) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  int err = pthread_mutex_init((pthread_mutex_t*)mtx, &attr);
  pthread_mutexattr_destroy(&attr);
  return ThrdResult(err);
}

int mtx_lock(mtx_t* mtx) {
  return ThrdResult(pthread_mutex_lock((pthread_mutex_t*)mtx));
}

int mtx_trylock(mtx_t* mtx) {
  return ThrdResult(pthread_mutex_trylock((pthread_mutex_t*)mtx));
}

int mtx_timedlock(mtx_t* restrict mtx, const struct timespec* restrict ts) {
  return ThrdResult(pthread_mutex_timedlock((pthread_mutex_t*)mtx, ts));
}

int mtx_unlock(mtx_t* mtx) {
  return ThrdResult(pthread_mutex_unlock((pthread_mutex_t*)mtx));
}

void mtx_destroy(mtx_t* mtx) {
  pthread_mutex_t* m = (pthread_mutex_t*)mtx;
  if (pthread_mutex_trylock(m) == 0) pthread_mutex_unlock(m);
  pthread_mutex_destroy(m);
}

int pthread_rwlock_destroy(pthread_rwlock_t* rwlock) {
  if (pthread_rwlock_trywrlock(rwlock) == 0) pthread_rwlock_unlock(rwlock);
  return __interceptor_pthread_rwlock_destroy(rwlock);
}

int cnd_init(cnd_t* cond) {
  return ThrdResult(pthread_cond_init((pthread_cond_t*)cond, NULL));
}

int cnd_signal(cnd_t* cond) {
  int err = pthread_cond_signal((pthread_cond_t*)cond);
  __tsan_release(cond);
  return ThrdResult(err);
}

int cnd_broadcast(cnd_t* cond) {
  int err = pthread_cond_broadcast((pthread_cond_t*)cond);
  __tsan_release(cond);
  return ThrdResult(err);
}

int cnd_wait(cnd_t* cond, mtx_t* mtx) {
  int err = pthread_cond_wait((pthread_cond_t*)cond, (pthread_mutex_t*)mtx);
  __tsan_release(cond);
  return ThrdResult(err);
}

int cnd_timedwait(cnd_t* restrict cond, mtx_t* restrict mtx, const struct timespec* restrict ts) {
  // C11 and pthreads agree: an absolute CLOCK_REALTIME deadline.
  int err = pthread_cond_timedwait((pthread_cond_t*)cond, (pthread_mutex_t*)mtx, ts);
  __tsan_release(cond);
  return ThrdResult(err);
}

void cnd_destroy(cnd_t* cond) {
  __tsan_acquire(cond);
  pthread_cond_destroy((pthread_cond_t*)cond);
}

void call_once(once_flag* flag, void (*func)(void)) {
  pthread_once((pthread_once_t*)flag, func);
}
