#include <curl/curl.h>

/* Swift cannot call C variadic functions such as curl_easy_setopt and curl_easy_getinfo,
 * and it does not import function-like or composite macros. These typed wrappers expose
 * exactly the shapes closebell uses. */

typedef size_t (*cb_data_callback)(char *data, size_t size, size_t count, void *userdata);
typedef int (*cb_xferinfo_callback)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                    curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode cb_global_init(void) { return curl_global_init(CURL_GLOBAL_ALL); }

static inline CURLcode cb_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cb_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cb_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cb_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cb_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cb_easy_setopt_data_function(CURL *handle, CURLoption option, cb_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cb_easy_setopt_xferinfo_function(CURL *handle, cb_xferinfo_callback value) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, value);
}

static inline CURLcode cb_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode cb_easy_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode cb_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}
