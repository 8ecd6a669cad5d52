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
