import uuid

import pytest
from pydantic import ValidationError

from gourmetgram.api import schemas


@pytest.mark.parametrize("name", ["abc", "Alice_01", "a.b-c", "x" * 64, "QWERTYuiopAS"])
def test_valid_usernames(name: str) -> None:
    assert schemas.UserCreate(username=name).username == name


@pytest.mark.parametrize("name", ["", "ab", "x" * 65, "_alice", "has space", "émile", "a/b", "bob;drop"])
def test_invalid_usernames_have_a_clear_message(name: str) -> None:
    with pytest.raises(ValidationError) as err:
        schemas.UserCreate(username=name)
    assert "username must be 3-64 characters" in str(err.value)


def test_comment_content_is_stripped_and_required() -> None:
    ids = {"image_id": uuid.uuid4(), "user_id": uuid.uuid4()}
    assert schemas.CommentCreate(content="  tasty ", **ids).content == "tasty"
    with pytest.raises(ValidationError, match="content must not be empty"):
        schemas.CommentCreate(content="   ", **ids)
    with pytest.raises(ValidationError, match="at most 2000"):
        schemas.CommentCreate(content="x" * 2001, **ids)


def test_flag_reason_required_targets_optional() -> None:
    flag = schemas.FlagCreate(user_id=uuid.uuid4(), reason="spam")
    assert flag.image_id is None and flag.comment_id is None
    with pytest.raises(ValidationError, match="reason must not be empty"):
        schemas.FlagCreate(user_id=uuid.uuid4(), reason="")


def test_optional_form_text() -> None:
    assert schemas.clean_optional_text(None, "caption", 10) is None
    assert schemas.clean_optional_text("  ", "caption", 10) is None
    assert schemas.clean_optional_text(" hi ", "caption", 10) == "hi"
    with pytest.raises(ValueError, match="caption must be at most 10"):
        schemas.clean_optional_text("x" * 11, "caption", 10)


@pytest.mark.parametrize("name", ["abc\n", " abc", "abc\t ", "\nabc\n"])
def test_usernames_are_trimmed_before_the_rule(name: str) -> None:
    assert schemas.UserCreate(username=name).username == "abc"


@pytest.mark.parametrize("name", ["ab\nc", "abc\x00", "abc\ud800"])
def test_inner_control_characters_and_surrogates_refused_in_usernames(name: str) -> None:
    with pytest.raises(ValidationError, match="username must be 3-64 characters"):
        schemas.UserCreate(username=name)


@pytest.mark.parametrize(
    ("value", "message"),
    [("yum\x00", "content must not contain NUL bytes"), ("yum\ud800", "unpaired surrogate"), ("\udfff", "surrogate")],
)
def test_unencodable_text_refused(value: str, message: str) -> None:
    ids = {"image_id": uuid.uuid4(), "user_id": uuid.uuid4()}
    with pytest.raises(ValidationError, match=message):
        schemas.CommentCreate(content=value, **ids)
    with pytest.raises(ValidationError, match=message.replace("content", "reason")):
        schemas.FlagCreate(user_id=uuid.uuid4(), reason=value, image_id=uuid.uuid4())
    with pytest.raises(ValueError, match=message.replace("content", "caption")):
        schemas.clean_optional_text(value, "caption", 100)


def test_paired_surrogates_are_ordinary_text() -> None:
    # JSON "\ud83c\udf5d" decodes to one code point (U+1F35D), which is valid text.
    assert schemas.clean_text('"\ud83c\udf5d"'.encode("utf-16", "surrogatepass").decode("utf-16"), "c", 10)
