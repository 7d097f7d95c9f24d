//! The pharmacy's desktop against a real server (tokens required): a doctor prescribes, the
//! patient shares her record with the pharmacy, the prescription is in the pharmacy's queue
//! and found by Health ID or id; it is dispensed in two parts (with batches) until the total
//! is reached, then completed; the history lists both handovers.

mod common;

use common::Clinic;
use curanet_desktop_core::DesktopError;
use curanet_desktop_core::pharmacy::{
    DispenseInput, PrescriptionStatus, dispense, dispense_history, lookup_prescriptions,
    pharmacy_queue, set_prescription_status,
};
use curanet_desktop_core::prescriptions::{RxInput, prescribe};

fn handover(quantity: f64, batch: &str) -> DispenseInput {
    DispenseInput {
        quantity,
        unit: "capsule".into(),
        batch: batch.into(),
        expiry: "2027-06-30".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prescription_is_queued_dispensed_in_parts_and_completed() {
    let clinic = Clinic::start("desktop_pharmacy").await;
    let p = clinic.patient.id().to_string();
    let hid = clinic.health_id().await;

    // The doctor, under Asha's consent, prescribes a five-day course: 15 capsules.
    clinic.grant(&clinic.doctor.reference).await;
    let doctor = clinic.desktop(&clinic.doctor).await;
    let rx = prescribe(
        &doctor,
        &clinic.doctor.reference,
        &p,
        &RxInput {
            medication: "Amoxicillin 500 mg capsule".into(),
            dose: 1.0,
            dose_unit: "capsule".into(),
            times_per_day: 3,
            duration_days: 5,
            instructions: None,
        },
    )
    .await
    .unwrap();
    assert!(!rx.queued);

    // Before Asha shares her record with the pharmacy, its queue is empty.
    let desk = clinic.desktop(&clinic.pharmacist).await;
    assert!(pharmacy_queue(&desk).await.unwrap().is_empty());
    clinic.grant(&clinic.pharmacy).await;

    let queue = pharmacy_queue(&desk).await.unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    let listed = &queue[0];
    assert_eq!(listed.id, rx.id);
    assert_eq!(listed.patient_id, p);
    assert_eq!(listed.patient_name.as_deref(), Some("Asha Rao"));
    assert_eq!(listed.health_id.as_deref(), Some(hid.as_str()));
    assert_eq!(listed.medication, "Amoxicillin 500 mg capsule");
    assert_eq!(
        (listed.quantity, listed.unit.as_deref()),
        (Some(15.0), Some("capsule"))
    );
    assert_eq!((listed.dispensed, listed.status.as_str()), (0.0, "active"));
    assert_eq!(
        listed.dosage.as_deref(),
        Some("1 capsule 3 times a day for 5 days")
    );
    let by_hid = lookup_prescriptions(&desk, &hid).await.unwrap();
    assert_eq!(by_hid.len(), 1);
    assert_eq!(by_hid[0].id, rx.id);
    let by_id = lookup_prescriptions(&desk, &rx.id).await.unwrap();
    assert_eq!(by_id.len(), 1);
    assert!(
        lookup_prescriptions(&desk, "no-such-prescription")
            .await
            .unwrap()
            .is_empty()
    );

    // Partial fill, then the rest.
    let me = clinic.pharmacist.reference.clone();
    let first = dispense(&desk, &me, &rx.id, &handover(6.0, "LOT-A1"))
        .await
        .unwrap();
    assert_eq!(
        (first.resource_type.as_str(), first.queued),
        ("MedicationDispense", false)
    );
    assert_eq!(pharmacy_queue(&desk).await.unwrap()[0].dispensed, 6.0);
    dispense(&desk, &me, &rx.id, &handover(9.0, "LOT-B2"))
        .await
        .unwrap();
    assert_eq!(pharmacy_queue(&desk).await.unwrap()[0].dispensed, 15.0);

    // Completed: out of the queue, no more dispensing.
    let done = set_prescription_status(
        &desk,
        &rx.id,
        PrescriptionStatus::Completed,
        Some("fully dispensed"),
    )
    .await
    .unwrap();
    assert!(!done.queued);
    assert!(pharmacy_queue(&desk).await.unwrap().is_empty());
    let looked = lookup_prescriptions(&desk, &rx.id).await.unwrap();
    assert_eq!(
        (looked[0].status.as_str(), looked[0].dispensed),
        ("completed", 15.0)
    );
    let refused = dispense(&desk, &me, &rx.id, &handover(1.0, "LOT-C3"))
        .await
        .unwrap_err();
    assert!(matches!(refused, DesktopError::Invalid(_)), "{refused}");

    let history = dispense_history(&desk, &me).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    let mut batches: Vec<&str> = history.iter().filter_map(|d| d.batch.as_deref()).collect();
    batches.sort_unstable();
    assert_eq!(batches, ["LOT-A1", "LOT-B2"]);
    assert!(
        history
            .iter()
            .all(|d| d.prescription_id.as_deref() == Some(rx.id.as_str()))
    );
    assert!(
        history
            .iter()
            .all(|d| d.expiry.as_deref() == Some("2027-06-30"))
    );
    assert_eq!(history[0].patient_name.as_deref(), Some("Asha Rao"));

    let _files = clinic.stop().await;
}
