/* log.h - leveled logging to stderr, safe from any thread. */
#ifndef RINGRESS_LOG_H
#define RINGRESS_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Current threshold; messages above it are dropped. Default LOG_INFO. */
extern enum log_level log_threshold;

/* Parses "error", "warn", "info", "debug" (or 0..3). Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

/* Writes one line "LEVEL time [tag] message" to stderr with a single write(2). */
void log_msg(enum log_level lvl, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(tag, ...) log_msg(LOG_ERROR, tag, __VA_ARGS__)
#define log_warn(tag, ...) log_msg(LOG_WARN, tag, __VA_ARGS__)
#define log_info(tag, ...)                                                     \
	do {                                                                   \
		if (log_threshold >= LOG_INFO)                                 \
			log_msg(LOG_INFO, tag, __VA_ARGS__);                   \
	} while (0)
#define log_debug(tag, ...)                                                    \
	do {                                                                   \
		if (log_threshold >= LOG_DEBUG)                                \
			log_msg(LOG_DEBUG, tag, __VA_ARGS__);                  \
	} while (0)

#endif
