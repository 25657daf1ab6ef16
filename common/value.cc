#include "common/value.h"

#include <algorithm>

#include "common/coding.h"

namespace drfs {
namespace {

enum Tag : uint8_t { kTagNull, kTagFalse, kTagTrue, kTagInt, kTagString, kTagList, kTagMap };

const std::string kEmptyString;
const Value::List kEmptyList;
const Value::Map kEmptyMap;

class ValueParser {
 public:
  explicit ValueParser(std::string_view in) : d_(in) {}

  Status Parse(Value* out, int depth) {
    if (depth > kMaxValueDepth) return Bad("nesting deeper than " + std::to_string(kMaxValueDepth));
    if (++count_ > kMaxValueCount) return Bad("more than " + std::to_string(kMaxValueCount) + " values");
    uint8_t tag;
    if (!d_.GetU8(&tag)) return Bad("truncated before a tag");
    switch (tag) {
      case kTagNull:
        *out = Value();
        return Status::Ok();
      case kTagFalse:
      case kTagTrue:
        *out = Value(tag == kTagTrue);
        return Status::Ok();
      case kTagInt: {
        uint64_t v;
        if (!d_.GetFixed64(&v)) return Bad("truncated integer");
        *out = Value(static_cast<int64_t>(v));
        return Status::Ok();
      }
      case kTagString: {
        std::string s;
        if (!d_.GetLengthPrefixed(&s, d_.remaining())) return Bad("string runs past the end");
        *out = Value(std::move(s));
        return Status::Ok();
      }
      case kTagList: {
        uint32_t n;
        if (!d_.GetFixed32(&n)) return Bad("truncated list count");
        // Every item takes at least one byte: a count above that is a lie, refused before
        // anything is allocated for it.
        if (n > d_.remaining()) return Bad("list count " + std::to_string(n) + " runs past the end");
        Value::List items;
        items.reserve(std::min<size_t>(n, 1024));  // the count is a claim; grow as items parse
        for (uint32_t i = 0; i < n; ++i) {
          Value item;
          DRFS_RETURN_IF_ERROR(Parse(&item, depth + 1));
          items.push_back(std::move(item));
        }
        *out = Value(std::move(items));
        return Status::Ok();
      }
      case kTagMap: {
        uint32_t n;
        if (!d_.GetFixed32(&n)) return Bad("truncated map count");
        if (n > d_.remaining() / 5) return Bad("map count " + std::to_string(n) + " runs past the end");
        Value::Map m;
        for (uint32_t i = 0; i < n; ++i) {
          std::string key;
          if (!d_.GetLengthPrefixed(&key, d_.remaining())) return Bad("map key runs past the end");
          Value v;
          DRFS_RETURN_IF_ERROR(Parse(&v, depth + 1));
          if (!m.emplace(std::move(key), std::move(v)).second) return Bad("duplicate map key");
        }
        *out = Value(std::move(m));
        return Status::Ok();
      }
      default:
        return Bad("unknown tag " + std::to_string(tag));
    }
  }

  bool done() const { return d_.empty(); }

 private:
  static Status Bad(const std::string& why) { return InvalidArgument("malformed value: " + why); }
  Decoder d_;
  size_t count_ = 0;
};

}  // namespace

const std::string& Value::AsString() const {
  return type_ == Type::kString ? str_ : kEmptyString;
}
const Value::List& Value::AsList() const { return type_ == Type::kList ? list_ : kEmptyList; }
const Value::Map& Value::AsMap() const { return type_ == Type::kMap ? map_ : kEmptyMap; }

Value& Value::operator[](const std::string& key) {
  if (type_ != Type::kMap) *this = EmptyMap();
  return map_[key];
}

const Value* Value::Find(const std::string& key) const {
  if (type_ != Type::kMap) return nullptr;
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second;
}

std::string Value::GetString(const std::string& key, const std::string& def) const {
  const Value* v = Find(key);
  return v && v->type_ == Type::kString ? v->str_ : def;
}

int64_t Value::GetInt(const std::string& key, int64_t def) const {
  const Value* v = Find(key);
  return v && (v->type_ == Type::kInt || v->type_ == Type::kBool) ? v->int_ : def;
}

bool Value::GetBool(const std::string& key, bool def) const {
  const Value* v = Find(key);
  return v && (v->type_ == Type::kInt || v->type_ == Type::kBool) ? v->int_ != 0 : def;
}

void Value::Push(Value v) { MutableList().push_back(std::move(v)); }

Value::List& Value::MutableList() {
  if (type_ != Type::kList) *this = EmptyList();
  return list_;
}

void Value::WriteJson(JsonWriter* j) const {
  switch (type_) {
    case Type::kNull:
      j->Null();
      break;
    case Type::kBool:
      j->Bool(int_ != 0);
      break;
    case Type::kInt:
      j->Int(int_);
      break;
    case Type::kString:
      j->String(str_);
      break;
    case Type::kList:
      j->BeginArray();
      for (const auto& v : list_) v.WriteJson(j);
      j->EndArray();
      break;
    case Type::kMap:
      j->BeginObject();
      for (const auto& [k, v] : map_) {
        j->Key(k);
        v.WriteJson(j);
      }
      j->EndObject();
      break;
  }
}

std::string Value::ToJson() const {
  JsonWriter j;
  WriteJson(&j);
  return j.Take();
}

void AppendValue(const Value& v, std::string* dst) {
  switch (v.type()) {
    case Value::Type::kNull:
      PutU8(dst, kTagNull);
      break;
    case Value::Type::kBool:
      PutU8(dst, v.AsBool() ? kTagTrue : kTagFalse);
      break;
    case Value::Type::kInt:
      PutU8(dst, kTagInt);
      PutFixed64(dst, static_cast<uint64_t>(v.AsInt()));
      break;
    case Value::Type::kString:
      PutU8(dst, kTagString);
      PutLengthPrefixed(dst, v.AsString());
      break;
    case Value::Type::kList:
      PutU8(dst, kTagList);
      PutFixed32(dst, static_cast<uint32_t>(v.AsList().size()));
      for (const auto& item : v.AsList()) AppendValue(item, dst);
      break;
    case Value::Type::kMap:
      PutU8(dst, kTagMap);
      PutFixed32(dst, static_cast<uint32_t>(v.AsMap().size()));
      for (const auto& [k, item] : v.AsMap()) {
        PutLengthPrefixed(dst, k);
        AppendValue(item, dst);
      }
      break;
  }
}

std::string EncodeValue(const Value& v) {
  std::string out;
  AppendValue(v, &out);
  return out;
}

Result<Value> DecodeValue(std::string_view bytes) {
  ValueParser p(bytes);
  Value v;
  DRFS_RETURN_IF_ERROR(p.Parse(&v, 0));
  if (!p.done()) return InvalidArgument("malformed value: trailing bytes");
  return v;
}

}  // namespace drfs
