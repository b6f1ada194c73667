import datetime as dt

import pytest

from node.errors import InvalidIdNumber
from node.security.idnumbers import gb11643_check_char, mask_id_number, normalise_id_number
from tests.conftest import valid_id


def test_published_example_checksum() -> None:
    # GB 11643-1999 worked example: 11010519491231002 -> check character X
    assert gb11643_check_char("11010519491231002") == "X"


def test_lowercase_x_is_normalised() -> None:
    assert normalise_id_number("resident_id", "11010519491231002x") == "11010519491231002X"


def test_fifteen_digit_number_is_upgraded() -> None:
    upgraded = normalise_id_number("resident_id", "110105491231002")
    assert upgraded == "11010519491231002X"


@pytest.mark.parametrize(
    "number, reason",
    [
        ("110105194912310021", "check character"),
        ("1101051949123100", "18 characters"),
        ("11010519491331002" + gb11643_check_char("11010519491331002"), "not a real date"),
        ("11010518891231002" + gb11643_check_char("11010518891231002"), "plausible"),
        ("", "empty"),
    ],
)
def test_bad_resident_ids_are_refused(number: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber) as err:
        normalise_id_number("resident_id", number)
    assert reason in err.value.message
    if number:
        assert number not in err.value.message  # the error can be logged safely


def test_future_birth_date_refused() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    first = "310101" + tomorrow.strftime("%Y%m%d") + "123"
    with pytest.raises(InvalidIdNumber):
        normalise_id_number("resident_id", first + gb11643_check_char(first))


def test_other_document_types() -> None:
    assert normalise_id_number("hk_macau_permit", "h12345678") == "H12345678"
    assert normalise_id_number("passport", "e1234567") == "E1234567"
    with pytest.raises(InvalidIdNumber):
        normalise_id_number("taiwan_permit", "12AB")
    with pytest.raises(InvalidIdNumber) as err:
        normalise_id_number("driving_licence", "123")
    assert err.value.code == "invalid_id_type"
    hmt = valid_id(region="810000")
    assert normalise_id_number("hmt_residence_permit", hmt) == hmt
    with pytest.raises(InvalidIdNumber):
        normalise_id_number("hmt_residence_permit", valid_id())


def test_mask() -> None:
    assert mask_id_number("31010119900307123X") == "310101********123X"
    assert mask_id_number("H12345678") == "H1*****78"
