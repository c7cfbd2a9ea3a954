#include "fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>

#include "maglev.h"

namespace ikelb {
namespace {

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("SHA-256: cannot initialise an OpenSSL digest");
  }
  void add(const void* data, size_t n) {
    if (EVP_DigestUpdate(ctx_.get(), data, n) != 1) throw std::runtime_error("SHA-256: update");
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  void add_u32(uint32_t v) {
    const uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    add(b, 4);
  }
  std::vector<uint8_t> finish() {
    std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
    unsigned n = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &n) != 1) throw std::runtime_error("SHA-256");
    out.resize(n);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

}  // namespace

uint64_t table_fingerprint(uint32_t table_size, std::vector<FingerprintMember> members,
                           std::span<const uint32_t> table) {
  std::sort(members.begin(), members.end(),
            [](const FingerprintMember& a, const FingerprintMember& b) { return a.name < b.name; });
  std::map<uint32_t, uint32_t> canonical;  // id -> index in name order
  for (uint32_t i = 0; i < members.size(); i++) canonical[members[i].id] = i;

  Sha256 h;
  h.add(std::string("ikelb table fingerprint v1\nmaglev v1\n"));
  h.add_u32(table_size);
  h.add_u32(static_cast<uint32_t>(members.size()));
  for (const FingerprintMember& m : members) {
    h.add(m.name.c_str(), m.name.size() + 1);
    h.add(m.address.c_str(), m.address.size() + 1);
    h.add_u32(m.weight);
  }
  std::vector<uint32_t> slots(table.size());
  for (size_t i = 0; i < table.size(); i++) {
    if (table[i] == kMaglevNoBackend) {
      slots[i] = kMaglevNoBackend;
      continue;
    }
    auto it = canonical.find(table[i]);
    if (it == canonical.end())
      throw std::invalid_argument("table slot " + std::to_string(i) + " names backend id " +
                                  std::to_string(table[i]) + ", which is not a member");
    slots[i] = it->second;
  }
  for (uint32_t s : slots) h.add_u32(s);
  std::vector<uint8_t> d = h.finish();
  uint64_t out = 0;
  for (int i = 0; i < 8; i++) out = (out << 8) | d[i];
  return out;
}

std::string fingerprint_hex(uint64_t fingerprint) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(fingerprint));
  return buf;
}

double fingerprint_metric_value(uint64_t fingerprint) {
  return static_cast<double>(fingerprint >> 16);
}

}  // namespace ikelb
